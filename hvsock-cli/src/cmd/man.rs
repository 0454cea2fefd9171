//! `hvsock man`: man pages, generated from the command line's own grammar.

use std::path::PathBuf;

use clap::CommandFactory;

use super::Cli;

/// Write a man page for hvsock and one for each command (`hvsock-connect.1`, `hvsock-lab-run.1`,
/// …) into DIR; without DIR, print hvsock.1.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Examples:
  hvsock man | man -l -                     # read it now
  hvsock man /usr/share/man/man1            # install every page")]
pub struct Args {
    /// Where to write the pages
    #[arg(value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let cmd = Cli::command();
    let Some(dir) = args.dir else {
        let mut page = Vec::new();
        clap_mangen::Man::new(cmd).render(&mut page)?;
        crate::output::out!("{}", String::from_utf8_lossy(&page));
        return Ok(0);
    };
    std::fs::create_dir_all(&dir).map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    let mut written = 0;
    write_pages(&cmd, "hvsock", &dir, &mut written)?;
    eprintln!("wrote {written} man pages to {}", dir.display());
    Ok(0)
}

/// `name.1` for this command, then one for each of its subcommands, named after their path.
fn write_pages(
    cmd: &clap::Command,
    name: &str,
    dir: &std::path::Path,
    written: &mut usize,
) -> anyhow::Result<()> {
    let page = cmd.clone().name(name.to_string());
    let path = dir.join(format!("{name}.1"));
    let mut out = Vec::new();
    clap_mangen::Man::new(page).render(&mut out)?;
    std::fs::write(&path, out).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    *written += 1;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set() && s.get_name() != "help") {
        write_pages(sub, &format!("{name}-{}", sub.get_name()), dir, written)?;
    }
    Ok(())
}
