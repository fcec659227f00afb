"""All models, imported here so that Alembic and the data map see every table."""

from app.models.activity import DeviceRecord, SessionActivity, UsageEvent
from app.models.audit import AuditEvent
from app.models.billing import BillingAddress, Invoice, PaymentMethod, Subscription
from app.models.choices import EmailChange, NoticeVersion, ProcessingChoice
from app.models.consent import ConsentRecord
from app.models.creative import GeneratedImage, Prompt, Upload
from app.models.exports import Export
from app.models.jobs import Job
from app.models.mail import OutboundMail
from app.models.marketing import (
    MarketingEvent,
    MarketingSubscriber,
    SuppressionEntry,
    TopicSubscription,
)
from app.models.requests import DataRequest, ErasureStep, RequestEvent
from app.models.support import SupportMessage
from app.models.types import utcnow
from app.models.users import User

__all__ = [
    "AuditEvent",
    "BillingAddress",
    "ConsentRecord",
    "DataRequest",
    "DeviceRecord",
    "EmailChange",
    "ErasureStep",
    "Export",
    "GeneratedImage",
    "Invoice",
    "Job",
    "MarketingEvent",
    "MarketingSubscriber",
    "NoticeVersion",
    "OutboundMail",
    "PaymentMethod",
    "ProcessingChoice",
    "Prompt",
    "RequestEvent",
    "SessionActivity",
    "Subscription",
    "SupportMessage",
    "SuppressionEntry",
    "TopicSubscription",
    "Upload",
    "UsageEvent",
    "User",
    "utcnow",
]
