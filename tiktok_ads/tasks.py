from celery import shared_task


@shared_task(ignore_result=True, acks_late=True, soft_time_limit=55, time_limit=70)
def flush_pixel(pixel_id: int):
    """Send a pixel's due events; chain another run when more are due (a long backlog)."""
    from tiktok_ads.dispatch import flush_pixel as flush

    report = flush(pixel_id=pixel_id)
    if report.more_due and report.requests:
        flush_pixel.apply_async(args=[pixel_id], retry=False)


@shared_task(ignore_result=True)
def sweep_outbox():
    """Beat: requeue rows of dead workers and wake a sender for every pixel with due events."""
    from tiktok_ads.dispatch import pixels_with_due_events, requeue_stale_claims
    from tiktok_ads.outbox import schedule_flush
    from tiktok_ads.pixels import pixel_sync_from_env

    pixel_sync_from_env()
    requeue_stale_claims()
    for pixel_id in pixels_with_due_events():
        schedule_flush(pixel_id)
