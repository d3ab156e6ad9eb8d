"""`manage.py fake_tiktok --port 9555`: run the fake TikTok Business API in the foreground."""

from django.core.management.base import BaseCommand

from tiktok_ads.fake_server import build_arg_parser, fake_from_options


class Command(BaseCommand):
    help = "Serve a fake TikTok Business API (Events API, audiences) for local runs and e2e tests."

    def add_arguments(self, parser):
        build_arg_parser(parser)

    def handle(self, *args, **options):
        fake_from_options(options).serve_forever(announce=self._announce)

    def _announce(self, line: str) -> None:
        self.stdout.write(line)
        self.stdout.flush()
