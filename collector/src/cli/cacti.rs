//! `cacti scrape`: the Cacti scraper outside `serve`.

use super::{load, open_store, Exit};
use anyhow::Result;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum CactiCommand {
    /// Scrape every configured source: once with --once, else on the configured interval
    /// until stopped. With --once the exit status is 0 when every graph was fetched, 1 when a
    /// graph failed (or another error), 3 when a source's graphs were fetched but not one of
    /// their titles names a POI (3 wins over 1).
    Scrape {
        #[command(flatten)]
        config: super::ConfigArg,
        #[arg(long)]
        once: bool,
    },
}

pub async fn run(command: CactiCommand) -> Result<()> {
    match command {
        CactiCommand::Scrape { config, once } => scrape(&config.config, once).await,
    }
}

async fn scrape(config: &std::path::Path, once: bool) -> Result<()> {
    let settings = load(config)?;
    netwarden_shared::logging::init(&settings.log);
    let Some(scrape) = &settings.scrape else {
        anyhow::bail!(
            "{}: no [[cacti.sources]] configured; nothing to scrape",
            config.display()
        );
    };
    let store = open_store(&settings, 2).await?;
    let metrics = std::sync::Arc::new(crate::metrics::Metrics::new());
    let scraper = crate::cacti::Scraper::new(scrape, store, metrics).await?;
    if once && !scraper.claim().await? {
        anyhow::bail!(
            "another collector is scraping Cacti now (it holds the cacti-scrape lease); try again later"
        );
    }
    if !once {
        scraper.run(netwarden_shared::shutdown::on_signal()).await;
        return Ok(());
    }
    let runs = scraper.run_once(chrono::Utc::now()).await;
    scraper.release().await?;
    let mut failures = 0;
    let mut understood_nothing = Vec::new();
    for run in &runs {
        let r = &run.record;
        println!(
            "{}: fetched {} graphs, {} samples written, {} skipped, {} failed, {} new maxouts ({} extended), {} titles naming no POI",
            r.source,
            r.fetched,
            r.samples,
            r.skipped.len(),
            r.failed.len(),
            run.new_maxouts.len(),
            run.extended_maxouts,
            run.no_poi.len()
        );
        for (graph, title) in &run.no_poi {
            println!("  no POI in the title of graph {graph}: {title:?}");
        }
        if run.understood_nothing() {
            understood_nothing.push(r.source.clone());
        }
        for (graph, why) in &r.skipped {
            println!("  skipped graph {graph}: {why}");
        }
        for (graph, err) in &r.failed {
            println!("  failed graph {graph}: {err}");
        }
        for m in &run.new_maxouts {
            println!(
                "  maxout {} graph {} {} from {} to {} peak {:.1}%",
                m.poi_code.as_deref().unwrap_or("?"),
                m.graph_id,
                m.direction,
                m.start,
                m.end,
                m.peak_pct
            );
        }
        failures += r.failed.len();
    }
    if !understood_nothing.is_empty() {
        return Err(Exit {
            code: EXIT_NO_POI,
            message: format!(
                "{}: graphs were fetched but no title names a POI, so no maxout can be seen (add [[cacti.titles]] patterns, or check the graph ids)",
                understood_nothing.join(", ")
            ),
        }
        .into());
    }
    if failures > 0 {
        anyhow::bail!("{failures} graph fetches failed (listed above)");
    }
    Ok(())
}

/// `cacti scrape --once`: a source yielded graphs, none with a POI title.
const EXIT_NO_POI: u8 = 3;
