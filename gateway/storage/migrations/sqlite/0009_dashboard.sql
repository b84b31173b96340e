-- Dashboard sign-in (mirrors TimescaleDB's 0009). Times are UTC microseconds since 1970.
CREATE TABLE account_passwords (
    account_id  TEXT PRIMARY KEY REFERENCES accounts (id),
    hash        TEXT NOT NULL,
    updated_at  INTEGER NOT NULL
);
