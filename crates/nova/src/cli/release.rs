//! `nova promote`, `nova approve`, `nova reject`, `nova rollback` and `nova promotions`: the
//! release lane from the command line, through the HTTP API with an API token (`--token`,
//! `NOVA_TOKEN` or `nova login`), like `nova build`. The server decides every gate; these
//! commands print what it answered.
//!
//! Exit codes: 0 when the server accepted, 1 when it refused (a gate, a permission, something
//! that does not exist: its problem's `detail` is printed), 2 when the command could not run
//! (no token, Nova unreachable, a server error).

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use serde_json::{Value, json};

use super::OutputFormat;
use super::login::{Refused, Remote, ServerArgs, answer};
use crate::web::view::time_text;

/// `nova promote`.
#[derive(Args)]
pub struct PromoteArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The component, e.g. `payment-service` or `component:default/payment-service`.
    component: String,
    /// The artifact's digest, `sha256:<64 hex digits>`.
    #[arg(long)]
    digest: String,
    /// The environment to promote it to.
    #[arg(long = "env")]
    environment: String,
    /// Platform admins only: skip the promotion-path gate (audited).
    #[arg(long)]
    override_path: bool,
}

/// `nova approve` and `nova reject`.
#[derive(Args)]
pub struct DecideArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The promotion's id (`nova promotions COMPONENT` lists the pending ones).
    id: String,
}

/// `nova rollback`.
#[derive(Args)]
pub struct RollbackArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The component, e.g. `payment-service` or `component:default/payment-service`.
    component: String,
    /// The environment to roll back.
    #[arg(long = "env")]
    environment: String,
    /// An earlier artifact the environment ran (default: the one before the current one).
    #[arg(long = "to", value_name = "DIGEST")]
    digest: Option<String>,
}

/// `nova promotions`.
#[derive(Args)]
pub struct PromotionsArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The component, e.g. `payment-service` or `component:default/payment-service`.
    component: String,
    #[arg(long, value_enum, default_value = "text")]
    output: OutputFormat,
}

/// One release command.
pub enum ReleaseCommand {
    Promote(PromoteArgs),
    Approve(DecideArgs),
    Reject(DecideArgs),
    Rollback(RollbackArgs),
    Promotions(PromotionsArgs),
}

/// Runs a release command; see the module's exit codes.
pub fn run(cmd: ReleaseCommand) -> ExitCode {
    match super::runtime().block_on(dispatch(cmd)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<Refused>().is_some_and(|r| r.status.is_client_error()) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
        Err(e) => super::fail(e),
    }
}

async fn dispatch(cmd: ReleaseCommand) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    match cmd {
        ReleaseCommand::Promote(a) => {
            let remote = a.server.resolve()?;
            let body = json!({ "digest": a.digest, "environment": a.environment, "overridePath": a.override_path });
            let p = send(&client, &remote, reqwest::Method::POST, &format!("components/{}/promotions", segment(&a.component)), Some(body)).await?;
            println!("{}", promotion_line(&p));
        }
        ReleaseCommand::Approve(a) | ReleaseCommand::Reject(a) if a.id.is_empty() || a.id.contains(['/', '?', '#']) => {
            anyhow::bail!("{:?} is not a promotion id", a.id);
        }
        ReleaseCommand::Approve(a) => {
            let remote = a.server.resolve()?;
            let p = send(&client, &remote, reqwest::Method::POST, &format!("promotions/{}/approvals", a.id), None).await?;
            println!("{}", promotion_line(&p));
        }
        ReleaseCommand::Reject(a) => {
            let remote = a.server.resolve()?;
            let p = send(&client, &remote, reqwest::Method::POST, &format!("promotions/{}/reject", a.id), None).await?;
            println!("{}", promotion_line(&p));
        }
        ReleaseCommand::Rollback(a) => {
            let remote = a.server.resolve()?;
            let path = format!("components/{}/environments/{}/rollback", segment(&a.component), segment(&a.environment));
            let p = send(&client, &remote, reqwest::Method::POST, &path, Some(json!({ "digest": a.digest }))).await?;
            println!("{}", promotion_line(&p));
        }
        ReleaseCommand::Promotions(a) => {
            let remote = a.server.resolve()?;
            let envs = send(&client, &remote, reqwest::Method::GET, &format!("components/{}/environments", segment(&a.component)), None).await?;
            match a.output {
                OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&envs)?),
                OutputFormat::Text => print!("{}", environments_table(&envs)),
            }
        }
    }
    Ok(())
}

/// A path segment as the API takes it (`/` in a component reference escaped).
fn segment(s: &str) -> String {
    s.replace('%', "%25").replace('/', "%2F").replace('?', "%3F").replace('#', "%23")
}

async fn send(client: &reqwest::Client, remote: &Remote, method: reqwest::Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
    let mut req = client.request(method, format!("{}/api/v1/{path}", remote.server)).bearer_auth(&remote.token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    answer(req.send().await.with_context(|| format!("cannot reach Nova at {}", remote.server))?).await
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("")
}

/// `sha256:` and 12 hex digits.
fn short(digest: &str) -> &str {
    &digest[..digest.len().min(19)]
}

/// One promotion in a line: id, what goes where, its state and what it waits for.
fn promotion_line(p: &Value) -> String {
    let approvals: Vec<&str> = p["approvals"].as_array().map(|a| a.iter().filter_map(|x| x["approver"].as_str()).collect()).unwrap_or_default();
    let mut line = format!("promotion {}: {} {} -> {}: {}", text(p, "id"), text(p, "componentRef"), short(text(p, "digest")), text(p, "environment"), text(p, "state"));
    if p["rollback"].as_bool() == Some(true) {
        line.push_str(" (rollback)");
    }
    if !approvals.is_empty() {
        line.push_str(&format!("; approved by {}", approvals.join(", ")));
    }
    if let Some(reason) = p["reason"].as_str() {
        line.push_str(&format!("; {reason}"));
    }
    if let Some(commit) = p["commitSha"].as_str() {
        line.push_str(&format!("; commit {commit}"));
    }
    line
}

/// The environments in order with what runs in each, then the pending promotions.
fn environments_table(envs: &Value) -> String {
    let none = Vec::new();
    let envs = envs.as_array().unwrap_or(&none);
    let mut rows = vec![["ENVIRONMENT", "ARTIFACT", "TAGS", "SINCE", "BY", "COMMIT", "PIN"].map(String::from).to_vec()];
    let mut pending = vec![["ID", "ENVIRONMENT", "ARTIFACT", "STATE", "APPROVALS", "REQUESTED BY"].map(String::from).to_vec()];
    for e in envs {
        let c = &e["current"];
        let pin = e["pin"]["pinnedBy"].as_str().map(|by| format!("pinned by {by}")).unwrap_or_default();
        let tags = c["tags"].as_array().map(|t| t.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(",")).unwrap_or_default();
        let since = c["finishedAt"].as_i64().map(|t| time_text(Some(t))).unwrap_or_default();
        let artifact = if c.is_null() { "-".to_string() } else { short(text(c, "digest")).to_string() };
        rows.push(vec![text(e, "name").into(), artifact, tags, since, text(c, "requestedBy").into(), c["commitSha"].as_str().unwrap_or("").chars().take(12).collect(), pin]);
        for p in e["pending"].as_array().unwrap_or(&none) {
            let approvers: Vec<&str> = p["approvals"].as_array().map(|a| a.iter().filter_map(|x| x["approver"].as_str()).collect()).unwrap_or_default();
            let count = format!("{}/{}{}", approvers.len(), e["approvalsNeeded"].as_u64().unwrap_or(0), if approvers.is_empty() { String::new() } else { format!(" ({})", approvers.join(", ")) });
            pending.push(vec![text(p, "id").into(), text(e, "name").into(), short(text(p, "digest")).into(), text(p, "state").into(), count, text(p, "requestedBy").into()]);
        }
    }
    let mut out = table(&rows);
    if pending.len() > 1 {
        out.push_str("\nPending promotions:\n");
        out.push_str(&table(&pending));
    } else {
        out.push_str("\nNo pending promotions.\n");
    }
    out
}

/// Rows as left-aligned columns two spaces apart.
fn table(rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..rows[0].len()).map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
    rows.iter()
        .map(|r| {
            let cells: Vec<String> = r.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
            format!("{}\n", cells.join("  ").trim_end())
        })
        .collect()
}
