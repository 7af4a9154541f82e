//! `h2ovl convert` (owned by the converter work; placeholder until it lands).
#[derive(clap::Args)]
pub struct ConvertArgs {}
pub fn run(_a: ConvertArgs) -> anyhow::Result<()> { anyhow::bail!("convert: not implemented yet") }
