//! Customers statements both backends run as written (see [`super`]).

use super::Statement;
use const_format::concatcp;

pub const ACCOUNT_COLUMNS: &str =
    "id, name, contact_name, contact_email, account_manager, cx_manager";

pub const SAVE_EMPLOYEE: Statement = statement!(
    "INSERT INTO employees (id, name, email, phone, updated_at) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (id) DO UPDATE SET name = excluded.name, email = excluded.email,
         phone = excluded.phone, updated_at = excluded.updated_at"
);

pub const EMPLOYEE: Statement =
    statement!("SELECT id, name, email, phone FROM employees WHERE id = $1");

pub const EMPLOYEES: Statement =
    statement!("SELECT id, name, email, phone FROM employees ORDER BY id");

pub const SAVE_ACCOUNT: Statement = statement!(
    "INSERT INTO accounts (id, name, contact_name, contact_email, account_manager,
         cx_manager, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)
     ON CONFLICT (id) DO UPDATE SET name = excluded.name,
         contact_name = excluded.contact_name, contact_email = excluded.contact_email,
         account_manager = excluded.account_manager, cx_manager = excluded.cx_manager,
         updated_at = excluded.updated_at"
);

pub const ACCOUNT: Statement = statement!(concatcp!(
    "SELECT ",
    ACCOUNT_COLUMNS,
    " FROM accounts WHERE id = $1"
));

pub const ACCOUNTS: Statement = statement!(concatcp!(
    "SELECT ",
    ACCOUNT_COLUMNS,
    " FROM accounts ORDER BY id"
));

pub const SAVE_NOTIFICATION: Statement = statement!(
    "INSERT INTO notifications (event_kind, event_id, channel, recipients, subject, status,
         error, attempts, created_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
);

/// Every statement here, by name, for the test that prepares them on both backends.
pub const ALL: &[(&str, Statement)] = &[
    ("customers::SAVE_EMPLOYEE", SAVE_EMPLOYEE),
    ("customers::EMPLOYEE", EMPLOYEE),
    ("customers::EMPLOYEES", EMPLOYEES),
    ("customers::SAVE_ACCOUNT", SAVE_ACCOUNT),
    ("customers::ACCOUNT", ACCOUNT),
    ("customers::ACCOUNTS", ACCOUNTS),
    ("customers::SAVE_NOTIFICATION", SAVE_NOTIFICATION),
];
