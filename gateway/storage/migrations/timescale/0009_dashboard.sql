-- Dashboard sign-in (issue 10): an account's password, kept only as a scrypt hash (the
-- encoded form carries its own parameters and salt, so they can be raised without a migration).
CREATE TABLE account_passwords (
    account_id  text PRIMARY KEY REFERENCES accounts (id),
    hash        text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
