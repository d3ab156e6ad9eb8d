class RequestIdMiddleware:
    """Placeholder: gives every request an id for the logs (filled in by the observability work)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)
