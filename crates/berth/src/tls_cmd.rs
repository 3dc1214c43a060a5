//! `berth tls gen` (RancherOS's `ros tls gen`): the CA, server and client certificates for
//! User Docker's TLS, and the client's copy in the login user's `~/.docker/`.

use berth_tls::{CertStore, Outcome};
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct TlsArgs {
    #[command(subcommand)]
    command: TlsCommand,
}

#[derive(Subcommand)]
enum TlsCommand {
    /// Make the CA, server and client certificates (kept when they exist, unless --force),
    /// and copy the client's ca.pem, cert.pem and key.pem to ~/.docker/ (needs sudo)
    #[command(after_help = "Then, with berth.docker.tls: true:\n  \
        docker --tlsverify -H tcp://HOST:2376 version")]
    Gen {
        /// Only the server's side: do not copy the client's files to ~/.docker/
        #[arg(long)]
        server: bool,
        /// A name or address the server certificate is also for (repeatable); the hostname,
        /// localhost, 127.0.0.1 and the machine's addresses are always in it
        #[arg(short = 'H', long = "hostname", value_name = "HOST")]
        hosts: Vec<String>,
        /// The certificate directory
        #[arg(short, long, default_value = berth_tls::TLS_DIR)]
        dir: PathBuf,
        /// Make new certificates even when a complete set exists (clients need the new ones)
        #[arg(long)]
        force: bool,
    },
}

/// The user whose `~/.docker/` gets the client's files: the one who ran sudo, else the login
/// user.
fn client_user() -> String {
    std::env::var("SUDO_USER")
        .ok()
        .filter(|u| !u.is_empty() && u != "root")
        .unwrap_or_else(|| berth_console::USER.to_string())
}

pub fn main(args: TlsArgs) -> i32 {
    let TlsCommand::Gen {
        server,
        hosts,
        dir,
        force,
    } = args.command;
    if !nix::unistd::geteuid().is_root() {
        eprintln!("berth tls gen: the certificates are root's: run `sudo berth tls gen`");
        return 1;
    }
    let store = CertStore::new(&dir);
    match store.ensure(&berth_tls::names_here(&hosts), force) {
        Ok(Outcome::Created) => println!("made a CA and certificates in {}", dir.display()),
        Ok(Outcome::Kept) => {
            println!(
                "kept the certificates in {} (--force makes new ones)",
                dir.display()
            );
            if !hosts.is_empty() {
                eprintln!("berth tls gen: -H applies to new certificates only: add --force");
            }
        }
        Err(e) => {
            eprintln!("berth tls gen: {e}");
            return 1;
        }
    }
    if server {
        return 0;
    }
    let user = client_user();
    let Some((home, owner)) = berth_console::docker_client::user_home(&user) else {
        eprintln!("berth tls gen: no user {user} to give the client's files to");
        return 1;
    };
    match berth_console::docker_client::install_client_files(Path::new("/"), &store, &home, owner) {
        Ok(_) => {
            println!("client files: {}/.docker/{{ca,cert,key}}.pem", home.display());
            0
        }
        Err(e) => {
            eprintln!("berth tls gen: {e}");
            1
        }
    }
}
