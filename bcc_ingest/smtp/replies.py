"""Every reply the BCC listener chooses, in one place (RFC 5321 codes, RFC 3463 enhanced codes).

Replies never carry internal detail (exception text, which check failed, whether an address
or a user exists): the server's log has that, the client gets a reason it can act on.
"""

from __future__ import annotations

RCPT_OK = "250 2.1.5 Recipient OK"
# The ids of the queued rows let an admin find the message with `crm-gateway inbound show`.
QUEUED = "250 2.0.0 Queued as {ids}"

# 4xx: the sender keeps the message and tries again later.
ERR_451 = "451 4.3.0 Temporary failure, please try again later"

# 5xx: permanent, the sender returns the message. (Oversized mail gets aiosmtpd's own 552,
# at MAIL FROM when SIZE= says so, else at the end of DATA.)
ERR_UNKNOWN_RECIPIENT = "550 5.1.1 No such recipient here: this server does not relay"
ERR_NOT_AUTHORISED = "550 5.7.1 Not authorised to log mail here"
