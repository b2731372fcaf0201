//! `nova credentials list|add|rotate|revoke`: a team's credentials from the command line,
//! directly in the configured secret store (every change audited with the command-line user as
//! actor). The secret is read from a file or standard input, never from an argument.

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use nova_domain::Sensitive;
use serde_json::json;

use super::DbArgs;
use crate::audit::{AuditEvent, AuditLog};
use crate::secrets::SecretError;
use crate::secrets::credentials::{self, CredentialError, CredentialKind, CredentialRequest};

#[derive(Subcommand)]
pub enum CredentialsCommand {
    /// A team's credentials (metadata only).
    List(ListArgs),
    /// Register a new credential.
    Add(PutArgs),
    /// Replace an existing credential's secret and fields (its creator is kept).
    Rotate(PutArgs),
    /// Revoke a credential: delete it from the secret store with every version.
    Revoke(NameArgs),
}

#[derive(Args)]
pub struct ListArgs {
    /// The team (a group name in the `default` namespace).
    team: String,
    #[command(flatten)]
    db: DbArgs,
}

#[derive(Args)]
pub struct NameArgs {
    /// The team (a group name in the `default` namespace).
    team: String,
    /// The credential's name.
    name: String,
    #[command(flatten)]
    db: DbArgs,
}

#[derive(Clone, Copy, ValueEnum)]
enum Kind {
    SshKey,
    HttpsToken,
    Registry,
}

#[derive(Args)]
pub struct PutArgs {
    #[command(flatten)]
    target: NameArgs,
    #[arg(long, value_enum)]
    kind: Kind,
    /// A repository the credential may be used for (1 to 5; repeat the option).
    #[arg(long = "repo", value_name = "URL", required = true)]
    repositories: Vec<String>,
    /// The HTTPS username (https-token) or the registry host (registry).
    #[arg(long)]
    username: Option<String>,
    #[arg(long, default_value = "")]
    description: String,
    /// Where to read the secret: a file, or `-` for standard input.
    #[arg(long, value_name = "FILE")]
    secret_file: PathBuf,
    /// Where to read the passphrase of a passphrase-protected SSH key (a file, or `-` for
    /// standard input). Nova decrypts the key with it and keeps neither.
    #[arg(long, value_name = "FILE")]
    passphrase_file: Option<PathBuf>,
}

pub fn run(cmd: CredentialsCommand) -> ExitCode {
    super::runtime()
        .block_on(async {
            match cmd {
                CredentialsCommand::List(args) => list(args).await,
                CredentialsCommand::Add(args) => put(args, false).await,
                CredentialsCommand::Rotate(args) => put(args, true).await,
                CredentialsCommand::Revoke(args) => revoke(args).await,
            }
        })
        .unwrap_or_else(super::fail)
}

async fn list(args: ListArgs) -> anyhow::Result<ExitCode> {
    let (config, _) = args.db.open().await?;
    let store = crate::secrets::open(&config.secrets).await?;
    for c in credentials::list(store.as_ref(), &args.team).await? {
        let rotated = c.rotated_at_ms.map_or_else(|| "never rotated".into(), |_| format!("rotated by {}", c.rotated_by.unwrap_or_default()));
        println!("{:<24} {:<12} {}  (created by {}, {rotated})", c.name, serde_json::to_value(c.kind)?.as_str().unwrap_or(""), c.repositories.join(" "), c.created_by);
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads the value `option` names: a file, or `-` for standard input.
fn read_secret(option: &str, path: &std::path::Path) -> anyhow::Result<Sensitive<String>> {
    let mut text = String::new();
    if path.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut text).map_err(|e| anyhow::anyhow!("{option}: cannot read standard input: {e}"))?;
    } else {
        text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{option}: cannot read {}: {e}", path.display()))?;
    }
    // A token loses its trailing newline; a key keeps its lines.
    Ok(Sensitive::new(text.trim_end_matches(['\n', '\r']).to_string()))
}

async fn put(args: PutArgs, rotate: bool) -> anyhow::Result<ExitCode> {
    if args.passphrase_file.as_deref() == Some(std::path::Path::new("-")) && args.secret_file.as_os_str() == "-" {
        anyhow::bail!("--passphrase-file and --secret-file cannot both be standard input");
    }
    let secret = read_secret("--secret-file", &args.secret_file)?;
    let passphrase = args.passphrase_file.as_deref().map(|p| read_secret("--passphrase-file", p)).transpose()?;
    let NameArgs { team, name, db } = args.target;
    let (config, db) = db.open().await?;
    let store = crate::secrets::open(&config.secrets).await?;
    match (credentials::info(store.as_ref(), &team, &name).await, rotate) {
        (Ok(_), false) => anyhow::bail!("{team} already has a credential {name}; use `nova credentials rotate` to replace it"),
        (Err(CredentialError::Store(SecretError::NotFound(_))), true) => anyhow::bail!("{team} has no credential {name}; use `nova credentials add`"),
        (Err(CredentialError::Store(SecretError::NotFound(_))), false) | (Ok(_), true) => {}
        (Err(e), _) => return Err(e.into()),
    }
    let kind = match args.kind {
        Kind::SshKey => CredentialKind::SshKey,
        Kind::HttpsToken => CredentialKind::HttpsToken,
        Kind::Registry => CredentialKind::Registry,
    };
    let req = CredentialRequest { kind, repositories: args.repositories, username: args.username, description: args.description, secret, passphrase };
    let actor = super::cli_actor();
    let saved = credentials::put(store.as_ref(), credentials::checker(&config.builds).as_ref(), &team, &name, &req, &actor, crate::storage::now_ms()).await?;
    audit(&config, db, actor, saved.action(), &team, &name, saved.audit_details()).await?;
    println!("{team}/{name}: {}", if saved.rotated { "rotated" } else { "registered" });
    Ok(ExitCode::SUCCESS)
}

async fn revoke(args: NameArgs) -> anyhow::Result<ExitCode> {
    let (config, db) = args.db.open().await?;
    let store = crate::secrets::open(&config.secrets).await?;
    let info = credentials::revoke(store.as_ref(), &args.team, &args.name).await?;
    audit(&config, db, super::cli_actor(), "credentials.revoke", &args.team, &args.name, json!({ "kind": info.kind, "repositories": info.repositories })).await?;
    println!("{}/{}: revoked", args.team, args.name);
    Ok(ExitCode::SUCCESS)
}

async fn audit(config: &crate::config::Config, db: crate::storage::Db, actor: String, action: &str, team: &str, name: &str, details: serde_json::Value) -> anyhow::Result<()> {
    AuditLog::new(db, config.audit.log_events).record(AuditEvent::outside_request(actor, action, format!("credential:{team}/{name}"), details)).await?;
    Ok(())
}
