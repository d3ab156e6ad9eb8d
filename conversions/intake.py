"""What the conversion endpoints do once a request's fields are valid, shared by the DRF views (conversions.apis)
and the fast path that answers the everyday request without them (conversions.fast_intake)."""

from rest_framework import status

from conversions import services
from conversions.auth import QUERY_PARAMS
from conversions.click_reads import click_with_campaign
from conversions.errors import NotFoundField
from conversions.models import Conversion

MAX_PARAMS_KEPT = 30


def conversion_body(result: services.ConversionResult) -> dict:
    """What ConversionOutput renders (it documents the body in the schema), built directly: through the
    serializer the answer was about a tenth of a conversion's CPU. A test keeps the two equal."""
    conversion = result.conversion
    return {
        "outcome": result.outcome,
        "conversion_id": conversion.public_id,
        "status": conversion.status,
        "goal": conversion.goal,
        "amount": conversion.amount_minor,
        "currency": conversion.currency,
        "utm_id": conversion.link.utm_id if conversion.link_id is not None else None,
        "click_id": conversion.click.click_id if conversion.click_id is not None else None,
        "time_to_conversion": conversion.time_to_conversion_s,
    }


def conversion_status(result: services.ConversionResult) -> int:
    return status.HTTP_201_CREATED if result.outcome == "created" else status.HTTP_200_OK


def postback_conversion(fields: dict, raw: dict) -> services.ConversionResult:
    """Record a postback from its validated PostbackInput `fields`; the network's `raw` parameters are kept
    with it (but not the API key). Raises NotFoundField for an unknown click."""
    click = click_with_campaign(fields["click_id"], with_latest_lead=True)
    if click is None:
        raise NotFoundField("click_id", "No click with this click_id.")
    kept = {key[:64]: str(value)[:200] for key, value in list(raw.items())[:MAX_PARAMS_KEPT]
            if key not in QUERY_PARAMS}  # fmt: skip
    return services.conversion_record(
        source=Conversion.Source.POSTBACK,
        click=click,
        amount_minor=fields["amount_minor"],
        currency=fields["currency"],
        status=fields.get("status", Conversion.Status.APPROVED),
        goal=fields.get("goal", "purchase"),
        transaction_id=fields.get("transaction_id", ""),
        params=kept,
    )
