//! `h2ovl gen-model` (owned by the models work; placeholder until it lands).
#[derive(clap::Args)]
pub struct GenModelArgs {}
pub fn run(_a: GenModelArgs) -> anyhow::Result<()> { anyhow::bail!("gen-model: not implemented yet") }
