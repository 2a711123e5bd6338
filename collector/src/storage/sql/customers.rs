//! Customers statements both backends run as written (see [`super`]).

use const_format::concatcp;

pub const ACCOUNT_COLUMNS: &str =
    "id, name, contact_name, contact_email, account_manager, cx_manager";

statements! {
    SAVE_EMPLOYEE = "INSERT INTO employees (id, name, email, phone, updated_at) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (id) DO UPDATE SET name = excluded.name, email = excluded.email,
             phone = excluded.phone, updated_at = excluded.updated_at";

    EMPLOYEE = "SELECT id, name, email, phone FROM employees WHERE id = $1";

    EMPLOYEES = "SELECT id, name, email, phone FROM employees ORDER BY id";

    SAVE_ACCOUNT = "INSERT INTO accounts (id, name, contact_name, contact_email, account_manager,
             cx_manager, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (id) DO UPDATE SET name = excluded.name,
             contact_name = excluded.contact_name, contact_email = excluded.contact_email,
             account_manager = excluded.account_manager, cx_manager = excluded.cx_manager,
             updated_at = excluded.updated_at";

    ACCOUNT = concatcp!(
        "SELECT ",
        ACCOUNT_COLUMNS,
        " FROM accounts WHERE id = $1"
    );

    ACCOUNTS = concatcp!(
        "SELECT ",
        ACCOUNT_COLUMNS,
        " FROM accounts ORDER BY id"
    );

    SAVE_NOTIFICATION = "INSERT INTO notifications (event_kind, event_id, channel, recipients, subject, status,
             error, attempts, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
}
