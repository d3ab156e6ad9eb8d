from rest_framework.negotiation import DefaultContentNegotiation


class JsonAnswer(DefaultContentNegotiation):
    """The intake endpoints answer JSON whatever the client's Accept header says (a network's postback
    client may send anything, and a 406 would drop its conversion). DRF's negotiation parsed that header
    and matched media types on every request: ~3 % of a conversion's CPU. The body's parser is still
    chosen by its Content-Type."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type
