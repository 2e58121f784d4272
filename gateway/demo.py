"""A demo CRM, seeded idempotently: running it again finds what is there and adds nothing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway import app_passwords
from gateway.clock import utcnow
from gateway.contacts import create_account, create_contact, find_contact
from gateway.diary_types import create_type
from gateway.entries import EntryDraft, all_day_bounds, create_entry
from gateway.models import Account, AppPassword, DiaryEntry, DiaryType, User
from gateway.publication import publish_user
from gateway.users import UserChanges, create_user, update_user

DEMO_LABEL = "demo"
ZONE = "Europe/London"

USERS = (
    ("alice", "alice@acme-sales.example", "Alice Martin"),
    ("bob", "bob@acme-sales.example", "Bob Okafor"),
    ("carol", "carol@acme-sales.example", "Carol Nguyen"),
)
TYPES = (
    ("Meeting", True, "#3A87AD"),
    ("Call", True, "#4CAF50"),
    ("Demo", True, "#FF9800"),
    ("Follow-up task", False, "#9E9E9E"),
)
ACCOUNTS = (
    ("Globex Corporation", ("globex.example",)),
    ("Initech", ("initech.example", "initech-mail.example")),
)
CONTACTS = (
    ("hank.scorpio@globex.example", "Hank Scorpio"),
    ("mindy.simmons@globex.example", "Mindy Simmons"),
    ("frank.grimes@globex.example", "Frank Grimes"),
    ("bill.lumbergh@initech.example", "Bill Lumbergh"),
    ("peter.gibbons@initech-mail.example", "Peter Gibbons"),
)
TOPICS = ("Pipeline review", "Pricing discussion", "Onboarding", "Renewal", "Product demo",
          "Contract questions", "Quarterly check-in", "Technical deep-dive")


@dataclass(frozen=True)
class DemoLogin:
    username: str
    email: str
    password: str


def _first_monday(today: date) -> date:
    return today - timedelta(days=today.weekday())


def seed(session: Session, today: date | None = None) -> list[DemoLogin]:
    """Create whatever of the demo CRM is missing; issue each user a fresh app password."""
    for name, syncable, color in TYPES:
        if session.scalar(select(DiaryType.id).where(DiaryType.name == name)) is None:
            create_type(session, name, syncable=syncable, color=color)
    for name, domains in ACCOUNTS:
        if session.scalar(select(Account.id).where(Account.name == name)) is None:
            create_account(session, name, list(domains))
    for email, name in CONTACTS:
        if find_contact(session, email) is None:
            create_contact(session, email, name=name)
    users = []
    for username, email, name in USERS:
        user = session.scalar(select(User).where(User.username == username))
        if user is None:
            user = create_user(session, username, email, name=name)
        if update_user(session, user, UserChanges(email_sync=True, diary_sync=True)):
            publish_user(session, user)
        users.append(user)
    _seed_entries(session, today or utcnow().date())

    logins = []
    for user in users:
        for row in session.scalars(select(AppPassword).where(
            AppPassword.user_id == user.id, AppPassword.label == DEMO_LABEL,
            AppPassword.revoked_at.is_(None),
        )):
            row.revoked_at = utcnow()
        issued = app_passwords.issue(session, user, DEMO_LABEL)
        logins.append(DemoLogin(user.username, user.email, issued.password))
    return logins


def _draft_for(n: int, monday: date) -> EntryDraft:
    usernames = [u[0] for u in USERS]
    organizer = usernames[n % 3]
    type_name = TYPES[n % 4][0]
    day = monday + timedelta(days=(n * 5) // 3 % 40 + 1)
    topic = TOPICS[n % len(TOPICS)]
    contact_email, contact_name = CONTACTS[n % len(CONTACTS)]
    attendees: list[str] = []
    if n % 3 == 0:
        attendees.append(contact_email)
    if n % 5 == 0:
        attendees.append(usernames[(n + 1) % 3])
    if n % 7 == 0:
        attendees.append(f"guest{n}@partner-firm.example")
    uid = f"demo-{n:02d}@crm-gateway"
    if n % 12 == 11:
        start, end = all_day_bounds(
            datetime.combine(day, time(), UTC), datetime.combine(day, time(), UTC)
        )
        return EntryDraft(type_name=type_name, title=f"{topic}: {contact_name.split()[-1]}",
                          start=start, end=end, organizer=organizer, all_day=True, uid=uid)
    zone = ZoneInfo(ZONE)
    start = datetime.combine(day, time(9 + n % 8, 30 if n % 2 else 0), zone).astimezone(UTC)
    return EntryDraft(
        type_name=type_name, title=f"{topic} with {contact_name}", start=start,
        end=start + timedelta(minutes=30 + 15 * (n % 3)), organizer=organizer,
        attendees=tuple(attendees), tzid=ZONE, uid=uid,
        location="Video call" if n % 2 else f"{contact_name.split()[-1]} office",
        description=f"Demo entry {n}: {topic.lower()}.",
    )


def _seed_entries(session: Session, today: date) -> None:
    existing = set(session.scalars(
        select(DiaryEntry.uid).where(DiaryEntry.uid.like("demo-%@crm-gateway"))
    ))
    monday = _first_monday(today)
    for n in range(48):
        draft = _draft_for(n, monday)
        if draft.uid not in existing:
            create_entry(session, draft)
    if "demo-weekly@crm-gateway" not in existing:
        start = datetime.combine(monday, time(8, 30), ZoneInfo(ZONE)).astimezone(UTC)
        create_entry(session, EntryDraft(
            type_name="Meeting", title="Weekly sales pipeline", start=start,
            end=start + timedelta(minutes=45), organizer="alice",
            attendees=("bob", "carol"), rrule="FREQ=WEEKLY;BYDAY=MO", tzid=ZONE,
            location="Board room", uid="demo-weekly@crm-gateway",
        ))
