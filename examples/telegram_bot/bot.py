"""An example Telegram bot wired to the tracker, on python-telegram-bot 22 (docs/telegram-bot.md).

    TELEGRAM_BOT_TOKEN=123:ABC TRACKER_URL=https://trk.example.com TRACKER_API_KEY=<intake key> \\
    PAYMENT_PROVIDER_TOKEN=<from @BotFather> python -m examples.telegram_bot.bot

- `/start <token>`: the visitor came from a tracking link; the token (the click id) goes to the tracker,
  which links this Telegram user to that click.
- `/buy` sends an invoice; Telegram's `successful_payment` is reported as a conversion, with the
  payment's charge id as transaction_id (so a repeat is the same conversion) and the Telegram user as
  customer (the tracker finds the click through them).
- `/link_tiktok` (optional) asks the tracker for a TikTok Login Kit link for this user.

Tracking never gets in the user's way: when the tracker cannot be reached the bot still answers, and the
failure is logged (tracker_client has already retried).
"""

import asyncio
import logging
import os
import re

from telegram import LabeledPrice, Update
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    PreCheckoutQueryHandler,
    filters,
)

from tracker_client import TrackerClient, TrackerError

logger = logging.getLogger(__name__)

# Telegram's deep-link parameter: 1-64 of A-Z a-z 0-9 _ - (https://core.telegram.org/bots/features#deep-linking)
START_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,64}")
TRACKER = "tracker"
PROVIDER_TOKEN = "payment_provider_token"
# invoice payload → (product name, price in minor units of CURRENCY)
PRODUCTS = {"gold_lootbox": ("Gold Lootbox", 5000)}
CURRENCY = "USD"


def _tracker(context: ContextTypes.DEFAULT_TYPE) -> TrackerClient:
    return context.bot_data[TRACKER]


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    user = update.effective_user
    token = context.args[0] if context.args else ""
    if START_TOKEN.fullmatch(token):
        try:
            await asyncio.to_thread(
                _tracker(context).track_start,
                token=token,
                user_id=user.id,
                username=user.username or "",
                first_name=user.first_name or "",
                language_code=user.language_code or "",
            )
        except TrackerError as exc:
            logger.warning("tracker did not record /start %s of %s: %s", token, user.id, exc)
    await update.effective_message.reply_text(f"Welcome, {user.first_name}! Send /buy to get a Gold Lootbox.")


async def buy(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    name, price_minor = PRODUCTS["gold_lootbox"]
    await context.bot.send_invoice(
        chat_id=update.effective_chat.id,
        title=name,
        description="A box of predictions for the next match.",
        payload="gold_lootbox",
        provider_token=context.bot_data.get(PROVIDER_TOKEN, ""),
        currency=CURRENCY,
        prices=[LabeledPrice(name, price_minor)],
    )


async def precheckout(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.pre_checkout_query
    if query.invoice_payload in PRODUCTS:
        await query.answer(ok=True)
    else:
        await query.answer(ok=False, error_message="This product is no longer available.")


async def successful_payment(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    payment = update.effective_message.successful_payment
    user = update.effective_user
    name = PRODUCTS.get(payment.invoice_payload, (payment.invoice_payload, 0))[0]
    try:
        await asyncio.to_thread(
            _tracker(context).conversion,
            customer_id=f"telegram_{user.id}",  # the tracker finds the click through the /start
            amount_minor=payment.total_amount,  # Telegram's total_amount is in minor units too
            currency=payment.currency,
            transaction_id=payment.telegram_payment_charge_id,
            product_id=payment.invoice_payload,
            product_name=name,
        )
    except TrackerError as exc:
        logger.error("tracker did not record payment %s of %s: %s", payment.telegram_payment_charge_id, user.id, exc)
    await update.effective_message.reply_text(f"Thank you! Your {name} is on its way.")


async def link_tiktok(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    try:
        url = await asyncio.to_thread(_tracker(context).tiktok_login_link, telegram_user_id=update.effective_user.id)
    except TrackerError as exc:
        logger.warning("no TikTok link for %s: %s", update.effective_user.id, exc)
        await update.effective_message.reply_text("Linking TikTok is not available right now.")
        return
    await update.effective_message.reply_text(f"Link your TikTok account: {url}")


def build_application(
    *,
    bot_token: str,
    tracker: TrackerClient,
    payment_provider_token: str = "",
    builder: ApplicationBuilder | None = None,
) -> Application:
    """The bot with its handlers. `builder` lets a caller choose how the bot talks to Telegram."""
    application = (builder or Application.builder()).token(bot_token).build()
    application.bot_data[TRACKER] = tracker
    application.bot_data[PROVIDER_TOKEN] = payment_provider_token
    application.add_handler(CommandHandler("start", start))
    application.add_handler(CommandHandler("buy", buy))
    application.add_handler(CommandHandler("link_tiktok", link_tiktok))
    application.add_handler(PreCheckoutQueryHandler(precheckout))
    application.add_handler(MessageHandler(filters.SUCCESSFUL_PAYMENT, successful_payment))
    return application


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    tracker = TrackerClient(os.environ["TRACKER_URL"], os.environ["TRACKER_API_KEY"])
    application = build_application(
        bot_token=os.environ["TELEGRAM_BOT_TOKEN"],
        tracker=tracker,
        payment_provider_token=os.environ.get("PAYMENT_PROVIDER_TOKEN", ""),
    )
    application.run_polling(allowed_updates=Update.ALL_TYPES)


if __name__ == "__main__":
    main()
