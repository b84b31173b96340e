"""Who may do what: tokens, SMART scopes, pairing codes and the audit trail."""
