"""Texts and lists taken from the guide (seed/mail-security-for-smtp-4.1-guide.txt).

One place for each product text that an administrator can see or edit: alert event names,
subjects and bodies (Table 3-2), notification defaults (§3 "Understanding notifications"),
the default file-name blocking list (Table 6-2) and the LDAP Auto Fill defaults (§5). The
product name is Mailmoat's; the wording is the guide's.
"""

# Table 3-2: alert key → (subject, body). Keys are the `alerts.<key>` settings.
ALERT_TEXTS: dict[str, tuple[str, str]] = {
    "service_start": ("Service Start", "The service has been started."),
    "service_start_improper": ("Service Start After Improper Shutdown",
                               "The service has been started after an improper shutdown."),
    "service_stop": ("Service Stop", "The service has been stopped."),
    "low_disk": ("Low Disk Space Threshold Exceeded",
                 "The {directory} directory is running dangerously low on disk space."),
    "low_memory": ("Low Memory Threshold Exceeded",
                   "The memory available on the server is running dangerously low."),
    "liveupdate_complete": ("LiveUpdate Completed", "The system completed a LiveUpdate operation."),
    "config_change": ("Configuration Change", "A configuration change was made."),
    "scan_error": ("Decomposition error", "An error occurred during message decomposition."),
    "smtp_protocol_violation": ("SMTP Protocol Violation",
                                "An SMTP protocol violation was detected by the server."),
    "http_protocol_violation": ("HTTP Protocol Violation",
                                "An HTTP protocol violation was detected by the server."),
    "failed_logons": ("Frequent Failed Logon Attempts",
                      "Several failed logon attempts have been made to the server."),
    "smtp_connection_failure": ("SMTP Connection Failure",
                                "A connection failure was encountered by the server."),
    "unauthorized_access": ("Unauthorized Attempt to Access Product Interface",
                            "An unauthorized attempt to access the server interface was detected."),
    "suspect_message": ("Suspect Message", "A suspect message was received by the server."),
}
# Table 3-2's Event column: the name the Alerts tab lists an alert by (the guide: "select the
# events that will trigger alerts"), beside the subject above. They differ most for scan_error,
# the event "Scan error" mailed as "Decomposition error" (docs finding C7).
ALERT_EVENT_NAMES: dict[str, str] = {
    "service_start": "Service start",    # the guide's table runs it together: "ServiceStart"
    "service_start_improper": "Service start after improper shutdown",
    "service_stop": "Service stop",
    "low_disk": "Low disk space",
    "low_memory": "Low memory",
    "liveupdate_complete": "LiveUpdate session complete",
    "config_change": "Application configuration change",
    "scan_error": "Scan error",
    "smtp_protocol_violation": "SMTP protocol violation",
    "http_protocol_violation": "HTTP protocol violation",
    "failed_logons": "Frequent failed logon attempts",
    "smtp_connection_failure": "SMTP connection failure",
    "unauthorized_access": "Unauthorized attempt to access product interface",
    "suspect_message": "Suspect message",
}

# §3 "Understanding notifications"; SPEC §3 sets the subject.
DEFAULT_NOTIFY_SUBJECT = "Mailmoat Policy Violation"
DEFAULT_NOTIFY_SENDER_BODY = (
    "The following message sent by this account has violated system policy:\n"
    "${MSGINFO}\n"
    "The following violations were detected:\n"
    "${VIRUSINFO}\n"
    "${CONTENTINFO}\n"
    "${ENCRYPTINFO}\n"
)
DEFAULT_NOTIFY_ADMIN_BODY = DEFAULT_NOTIFY_SENDER_BODY + "${DISPOSITION}\n"

DEFAULT_OUTBREAK_SUBJECT = "Virus Outbreak Alert"
DEFAULT_OUTBREAK_BODY = (
    "A virus outbreak has been detected: ${COUNT} infected messages in ${MINUTES} minutes.\n"
)

DEFAULT_AV_DELETED_TEXT = (
    "An attachment of this message was infected with a virus and has been deleted."
)
DEFAULT_FILENAME_DELETED_TEXT = (
    "An attachment of this message violated the attachment policy and has been deleted."
)

DEFAULT_QUARANTINE_TEMPLATE_USER = (
    "<p>Hello %USER_NAME%,</p>\n"
    "<p>%NEW_MESSAGE_COUNT% new messages suspected to be spam have been held for you.</p>\n"
    "%NEW_QUARANTINE_MESSAGES%\n"
    "<p>Messages are kept for %QUARANTINE_DAYS% days. "
    "Review them at <a href=\"%QUARANTINE_URL%\">%QUARANTINE_URL%</a>.</p>\n"
)
DEFAULT_QUARANTINE_TEMPLATE_LIST = (
    "<p>%NEW_MESSAGE_COUNT% new messages suspected to be spam were sent to the list "
    "%USER_NAME%.</p>\n"
    "%NEW_QUARANTINE_MESSAGES%\n"
    "<p>Messages are kept for %QUARANTINE_DAYS% days.</p>\n"
)

# Table 6-2 Default extension blocking list.
DEFAULT_BLOCKED_EXTENSIONS = (
    "*.ad", "*.ade", "*.adp", "*.asp", "*.bas", "*.bat", "*.chm", "*.cmd", "*.com", "*.cpl",
    "*.crt", "*.exe", "*.hlp", "*.hta", "*.inf", "*.ins", "*.isp", "*.js", "*.jse", "*.lnk",
    "*.mdb", "*.mde", "*.msc", "*.msi", "*.msp", "*.mst", "*.pcd", "*.pif", "*.reg", "*.scr",
    "*.sct", "*.shb", "*.shs", "*.url", "*.vb", "*.vbe", "*.vbs", "*.vsd", "*.vss", "*.vst",
    "*.vsw", "*.ws", "*.wsc", "*.wsf", "*.wsh",
)

# §5 "Configuring LDAP settings": Auto Fill defaults per directory type.
LDAP_AUTOFILL: dict[str, dict[str, str]] = {
    "active_directory": {
        "filter": "(&(|(objectCategory=group)(objectCategory=person))"
                  "(|(mail=*)(proxyAddresses=*))(sAMAccountName=*))",
        "login_attr": "sAMAccountName",
        "mail_attr": "mail",
        "alias_attr": "proxyAddresses",
    },
    "openldap": {
        "filter": "(&(objectClass=inetOrgPerson)(|(mail=*)(mailAlternateAddress=*))(uid=*))",
        "login_attr": "uid",
        "mail_attr": "mail",
        "alias_attr": "mailAlternateAddress",
    },
    "sunone": {
        "filter": "(&(|(objectClass=inetMailGroup)(objectClass=person))"
                  "(|(mail=*)(mailalternateaddress=*)))",
        "login_attr": "mail",
        "mail_attr": "mail",
        "alias_attr": "mailAlternateAddress",
    },
}
