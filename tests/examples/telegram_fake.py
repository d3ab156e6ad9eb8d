"""Telegram's Bot API at the HTTP boundary, for python-telegram-bot: answers like Telegram and records
every call, so the example bot runs its real handlers with no network."""

import json
import time

from telegram.request import BaseRequest, RequestData

BOT_USER = {"id": 7000000001, "is_bot": True, "first_name": "Demo", "username": "demo_tracker_bot"}


class FakeTelegramApi:
    def __init__(self):
        self.calls: list[tuple[str, dict]] = []
        self._message_id = 1000

    def request(self) -> BaseRequest:
        return _FakeRequest(self)

    def calls_to(self, method: str) -> list[dict]:
        return [params for name, params in self.calls if name == method]

    def answer(self, method: str, params: dict):
        if method == "getMe":
            return BOT_USER
        if method in ("sendMessage", "sendInvoice"):
            self._message_id += 1
            chat = {"id": params["chat_id"], "type": "private"}
            return {"message_id": self._message_id, "date": int(time.time()), "chat": chat, "from": BOT_USER,
                    "text": params.get("text", "")}  # fmt: skip
        if method == "answerPreCheckoutQuery":
            return True
        raise AssertionError(f"the bot called {method}, which this fake does not answer")


class _FakeRequest(BaseRequest):
    def __init__(self, api: FakeTelegramApi):
        self.api = api

    @property
    def read_timeout(self) -> float:
        return 5.0

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass

    async def do_request(self, url: str, method: str, request_data: RequestData | None = None, **timeouts):
        name = url.rsplit("/", 1)[-1]
        params = request_data.parameters if request_data is not None else {}
        self.api.calls.append((name, params))
        return 200, json.dumps({"ok": True, "result": self.api.answer(name, params)}).encode()


def user(user_id: int = 123456789) -> dict:
    return {"id": user_id, "is_bot": False, "first_name": "John", "username": "john_doe", "language_code": "ru"}


def message_update(update_id: int, *, text: str = "", **fields) -> dict:
    """An update as Telegram would post it: a private-chat message from the user."""
    chat = {"id": user()["id"], "type": "private", "first_name": "John", "username": "john_doe"}
    message = {"message_id": update_id, "date": int(time.time()), "from": user(), "chat": chat}
    if text:
        message["text"] = text
        if text.startswith("/"):
            command_length = len(text.split()[0])
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": command_length}]
    message.update(fields)
    return {"update_id": update_id, "message": message}


def pre_checkout_update(update_id: int, *, payload: str, total_amount: int, currency: str = "USD") -> dict:
    query = {"id": f"pcq-{update_id}", "from": user(), "currency": currency, "total_amount": total_amount,
             "invoice_payload": payload}  # fmt: skip
    return {"update_id": update_id, "pre_checkout_query": query}
