"""Email edges of the CRM gateway: SMTP (BCC) intake, IMAP polling and MIME parsing.

`gateway.mail.parse` turns raw RFC 5322 bytes into one plain `ParsedEmail` value; both the SMTP
listener and the IMAP poller hand that value to the gateway's activity service.
"""
