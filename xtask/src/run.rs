//! Placeholder, filled in below.
use anyhow::Result;

#[derive(clap::Args)]
pub struct RunArgs {}

pub fn run(_args: &RunArgs) -> Result<()> {
    anyhow::bail!("not yet")
}
