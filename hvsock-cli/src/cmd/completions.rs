//! `hvsock completions`: shell completions, generated from the command line's own grammar.

use clap::CommandFactory;

use super::Cli;

/// Print the completion script for SHELL.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Examples:
  source <(hvsock completions bash)                          # this bash, now
  hvsock completions bash > /usr/share/bash-completion/completions/hvsock
  hvsock completions zsh > \"${fpath[1]}/_hvsock\"
  hvsock completions fish > ~/.config/fish/completions/hvsock.fish
  hvsock completions powershell >> $PROFILE")]
pub struct Args {
    /// bash, zsh, fish, powershell or elvish
    #[arg(value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "hvsock", &mut script);
    crate::output::out!("{}", String::from_utf8_lossy(&script));
    Ok(0)
}
