//! Placeholder, filled in below.
use anyhow::Result;

#[derive(clap::Args)]
pub struct TestArgs {}

pub fn run(_args: &TestArgs) -> Result<()> {
    anyhow::bail!("not yet")
}
