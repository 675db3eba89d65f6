//! Demo accounts: an administrator, a shopper, and the reviewers behind the demo catalog's
//! reviews. Ids and names are deterministic so that the demo looks the same on every machine.

use kernel::AppResult;
use kernel::auth::Role;
use kernel::demo::DemoRng;
use uuid::Uuid;

use crate::Identity;
use crate::domain::Email;

/// The demo administrator's e-mail.
pub const ADMIN_EMAIL: &str = "admin@betterstore.dev";
/// The demo administrator's password.
pub const ADMIN_PASSWORD: &str = "operate-the-store-1";
/// The demo shopper's e-mail.
pub const SHOPPER_EMAIL: &str = "shopper@betterstore.dev";
/// The demo shopper's password.
pub const SHOPPER_PASSWORD: &str = "happy-shopping-1";
/// The password of every demo reviewer account.
pub const REVIEWER_PASSWORD: &str = "demo-review-pass-1";

const FIRST: &[&str] = &[
    "Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "John", "Margaret", "Ken",
    "Radia", "Tim", "Hedy", "Linus", "Sophie", "Dennis", "Karen", "Niklaus", "Leslie", "Annie",
];
const LAST: &[&str] = &[
    "Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Backus", "Hamilton",
    "Thompson", "Perlman", "Lee", "Lamarr", "Torvalds", "Wilson", "Ritchie", "Jones", "Wirth",
    "Lamport", "Easley",
];

/// One demo account.
#[derive(Debug, Clone)]
pub struct DemoAccount {
    /// Fixed id.
    pub id: Uuid,
    /// E-mail.
    pub email: String,
    /// Full name.
    pub name: String,
    /// Password in clear (demo only).
    pub password: &'static str,
    /// Roles.
    pub roles: Vec<Role>,
}

/// The demo accounts: administrator, shopper, then `reviewers` reviewers.
pub fn accounts(reviewers: usize) -> Vec<DemoAccount> {
    let mut rng = DemoRng::new("identity-accounts");
    let base = 1_767_225_600_000u64; // 2026-01-01
    let mut out = vec![
        DemoAccount {
            id: rng.uuid_v7(base),
            email: ADMIN_EMAIL.into(),
            name: "Store Operator".into(),
            password: ADMIN_PASSWORD,
            roles: vec![Role::Customer, Role::Admin],
        },
        DemoAccount {
            id: rng.uuid_v7(base + 1000),
            email: SHOPPER_EMAIL.into(),
            name: "Sam Shopper".into(),
            password: SHOPPER_PASSWORD,
            roles: vec![Role::Customer],
        },
    ];
    for i in 0..reviewers {
        let first = FIRST[i % FIRST.len()];
        let last = LAST[(i / FIRST.len() + i * 7) % LAST.len()];
        out.push(DemoAccount {
            id: rng.uuid_v7(base + 2000 + i as u64 * 1000),
            email: format!("reviewer{:03}@betterstore.dev", i + 1),
            name: format!("{first} {last}"),
            password: REVIEWER_PASSWORD,
            roles: vec![Role::Customer],
        });
    }
    out
}

/// Loads the demo accounts unless the demo administrator already exists; returns whether it did.
pub async fn load(identity: &Identity, accounts: &[DemoAccount]) -> AppResult<bool> {
    use entities::identity::customer;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let exists = customer::Entity::find()
        .filter(customer::Column::Email.eq(ADMIN_EMAIL))
        .one(&identity.db)
        .await?
        .is_some();
    if exists {
        return Ok(false);
    }
    // Hash each distinct demo password once: Argon2 is deliberately slow, and the demo
    // reviewers share one password.
    let mut hashes: Vec<(&str, String)> = Vec::new();
    for account in accounts {
        if !hashes.iter().any(|(p, _)| *p == account.password) {
            hashes.push((
                account.password,
                crate::password::hash(account.password.to_string()).await?,
            ));
        }
    }
    for account in accounts {
        let hash = hashes
            .iter()
            .find(|(p, _)| *p == account.password)
            .map(|(_, h)| h.clone())
            .unwrap_or_default();
        let email = Email::parse(&account.email)?;
        crate::accounts::insert_account_with_id(
            identity,
            account.id,
            &email,
            &account.name,
            hash,
            &account.roles,
        )
        .await?;
    }
    Ok(true)
}
