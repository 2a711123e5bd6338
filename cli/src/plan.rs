//! `netwarden plan get/diff/apply/history`: the fleet plan as a YAML file people keep in git.
//! A file is read and checked here first (every error naming its field), so a bad edit never
//! reaches the collector; `apply` saves on top of the version it was diffed against, and a
//! plan someone else saved in between is refused (exit 5), never overwritten.

use crate::api::Api;
use crate::output::{self, Column, Format};
use anyhow::Context;
use clap::Subcommand;
use netwarden_plan::Plan;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub enum PlanCommand {
    /// Prints the plan in force as YAML (with -o json: the whole answer, version and all).
    Get {
        /// An earlier version instead.
        #[arg(long)]
        version: Option<i64>,
    },
    /// What applying FILE would change: `+` added, `-` removed, `~` changed, by entry.
    Diff {
        /// The plan file (YAML or JSON).
        file: PathBuf,
    },
    /// Saves FILE as the new plan; agents get their share within seconds. It is saved only if
    /// the plan is still at the version FILE was edited from: `--base-version`, else the
    /// `# base_version: N` line `plan get` writes at the top. Someone else's save in between
    /// is refused (exit 5), never overwritten.
    Apply {
        file: PathBuf,
        /// Why, for the history.
        #[arg(long, default_value = "")]
        comment: String,
        /// The version FILE was edited from (0 for the first plan).
        #[arg(long)]
        base_version: Option<i64>,
        /// Replace whatever plan is in force now, whoever saved it.
        #[arg(long, conflicts_with = "base_version")]
        force: bool,
    },
    /// Merges the targets of an inventory CSV (a NetBox device or IP-address export, or
    /// `plan export`'s) into the plan in force and prints the result as a plan file (with its
    /// `# base_version`) to edit, diff and apply; `--apply` saves it at once. A target of the
    /// same name is replaced; only `active` rows are taken unless `--all-statuses`.
    Import {
        /// The CSV file (`,` or `;`, with or without a byte-order mark).
        file: PathBuf,
        /// The checks the imported targets run (default: `default`), unless the file says.
        #[arg(long = "check")]
        checks: Vec<String>,
        /// Take rows whatever their status (NetBox: planned, offline...).
        #[arg(long)]
        all_statuses: bool,
        /// The site of rows that name none (NetBox's IP-address export has no site column).
        #[arg(long)]
        site: Option<String>,
        /// Save the merged plan now instead of printing it.
        #[arg(long)]
        apply: bool,
        /// Why, for the history (with --apply).
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// The plan's targets as CSV (name, address, site, checks, label_* columns), which
    /// `plan import` reads back.
    Export,
    /// Who saved which version, when, why and what changed; newest first.
    History {
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
}

/// A plan file that is not a valid plan: exit code 5, as the collector's own refusal.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InvalidPlan(pub String);

/// A command line that does not say enough: exit code 2, as clap's own.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);

/// The line `plan get` writes so `apply` knows what the file was edited from.
const BASE_LINE: &str = "# base_version:";

/// The `# base_version: N` line of a plan file, if it has one.
fn base_in(text: &str) -> Option<i64> {
    text.lines()
        .find_map(|l| l.trim().strip_prefix(BASE_LINE))
        .and_then(|v| v.trim().parse().ok())
}

fn read_text(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

fn read_file(path: &Path) -> anyhow::Result<Plan> {
    let text = read_text(path)?;
    let plan = netwarden_plan::from_yaml(&text)
        .map_err(|e| InvalidPlan(format!("{}: {e}", path.display())))?;
    netwarden_plan::validate(&plan)
        .map_err(|errors| InvalidPlan(format!("{}: {errors}", path.display())))?;
    Ok(plan)
}

/// The plan in force and its version.
async fn current(api: &Api) -> anyhow::Result<(i64, Plan)> {
    let answer = api.get("api/plan", &[]).await?;
    parse_answer(&answer)
}

fn parse_answer(answer: &Value) -> anyhow::Result<(i64, Plan)> {
    let version = answer["version"]
        .as_i64()
        .context("the collector's answer has no plan version")?;
    let plan: Plan = serde_json::from_value(answer["plan"].clone())
        .context("the collector's plan is not one this netwarden reads (versions differ?)")?;
    Ok((version, plan))
}

/// Saves `plan` on top of version `base` and says what was saved.
async fn save(api: &Api, out: Format, base: i64, comment: &str, plan: &Plan) -> anyhow::Result<()> {
    let body = json!({"base_version": base, "comment": comment, "plan": plan});
    let saved = api.put("api/plan", &body).await?;
    match out {
        Format::Json => output::one(out, &saved),
        Format::Table => println!(
            "version {} saved: {}",
            saved["version"],
            saved["summary"].as_str().unwrap_or("")
        ),
    }
    Ok(())
}

const HISTORY_COLUMNS: &[Column] = &[
    ("VERSION", "version"),
    ("SAVED", "created_at"),
    ("BY", "author"),
    ("CHANGES", "summary"),
    ("COMMENT", "comment"),
];

impl PlanCommand {
    pub async fn run(self, api: &Api, out: Format) -> anyhow::Result<()> {
        match self {
            PlanCommand::Get { version } => {
                let answer = match version {
                    Some(v) => api.get(&format!("api/plan/versions/{v}"), &[]).await?,
                    None => api.get("api/plan", &[]).await?,
                };
                match out {
                    Format::Json => output::one(out, &answer),
                    Format::Table => {
                        let (version, plan) = parse_answer(&answer)?;
                        println!("{BASE_LINE} {version}");
                        if version == 0 {
                            println!("# no plan saved yet (version 0)");
                        } else {
                            println!(
                                "# version {version}, saved by {} at {}{}",
                                answer["author"].as_str().unwrap_or("?"),
                                answer["created_at"].as_str().unwrap_or("?"),
                                match answer["comment"].as_str() {
                                    Some(c) if !c.is_empty() => format!(": {c}"),
                                    _ => String::new(),
                                }
                            );
                        }
                        print!("{}", netwarden_plan::to_yaml(&plan));
                    }
                }
            }
            PlanCommand::Diff { file } => {
                let new = read_file(&file)?;
                let (version, old) = current(api).await?;
                let changes = netwarden_plan::diff(&old, &new);
                match out {
                    Format::Json => {
                        println!("{}", json!({"base_version": version, "changes": changes}))
                    }
                    Format::Table => {
                        if changes.is_empty() {
                            println!("no change from version {version}");
                        }
                        for change in &changes {
                            println!("{change}");
                        }
                    }
                }
            }
            PlanCommand::Apply {
                file,
                comment,
                base_version,
                force,
            } => {
                let plan = read_file(&file)?;
                let base = match (base_version, base_in(&read_text(&file)?), force) {
                    (Some(base), _, _) => base,
                    (None, _, true) => current(api).await?.0,
                    (None, Some(base), false) => base,
                    (None, None, false) => {
                        return Err(Usage(format!(
                            "{}: which version was it edited from? Give --base-version N (0 for the \
                             first plan), keep the \"{BASE_LINE} N\" line `netwarden plan get` writes, \
                             or --force to replace whatever is in force",
                            file.display()
                        ))
                        .into())
                    }
                };
                save(api, out, base, &comment, &plan).await?;
            }
            PlanCommand::Import {
                file,
                checks,
                all_statuses,
                site,
                apply,
                comment,
            } => {
                let bytes = std::fs::read(&file)
                    .with_context(|| format!("cannot read {}", file.display()))?;
                let options = netwarden_plan::csv::CsvOptions {
                    all_statuses,
                    checks,
                    site,
                };
                let imported = netwarden_plan::csv::targets_from_csv(
                    bytes.as_slice(),
                    &file.display().to_string(),
                    &options,
                )
                .map_err(|e| InvalidPlan(e.to_string()))?;
                for line in imported.skipped.iter().chain(&imported.renamed) {
                    eprintln!("{}: {line}", file.display());
                }
                let (base, mut plan) = current(api).await?;
                let count = imported.targets.len();
                netwarden_plan::csv::merge_targets(&mut plan, imported.targets);
                netwarden_plan::validate(&plan).map_err(|errors| {
                    InvalidPlan(format!(
                        "{}: the plan with these targets is not valid: {errors}",
                        file.display()
                    ))
                })?;
                eprintln!(
                    "{}: {count} targets read, {} rows skipped",
                    file.display(),
                    imported.skipped.len()
                );
                if apply {
                    save(api, out, base, &comment, &plan).await?;
                } else {
                    println!("{BASE_LINE} {base}");
                    print!("{}", netwarden_plan::to_yaml(&plan));
                }
            }
            PlanCommand::Export => {
                let (_, plan) = current(api).await?;
                print!("{}", netwarden_plan::csv::targets_to_csv(&plan.targets));
            }
            PlanCommand::History { limit } => {
                let versions = api
                    .get("api/plan/versions", &[("limit", limit.to_string())])
                    .await?;
                output::list(out, &versions, HISTORY_COLUMNS);
            }
        }
        Ok(())
    }
}
