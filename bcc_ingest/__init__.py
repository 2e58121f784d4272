"""The email edges of the CRM gateway, one sub-package per protocol.

- `bcc_ingest.smtp`: the BCC listener (aiosmtpd), its decisions and the inbound queue's worker;
- `bcc_ingest.imap`: the poller of reps' mailboxes (Twisted's IMAP4 client).

Both turn raw mail into `gateway.mail.parse.ParsedEmail` values (the core's parser) and hand them to
the core's activity service; neither imports the other.
"""
