//! Which console the `console` service runs: the release's slim console or the optional
//! `debian` one (`berth.console`, written by `berth console switch`). The choice only swaps
//! the image of the built-in console definition; a console the user defined with an image
//! of their own is left alone. The debian console's image is not in the release's image
//! store: when System Docker lacks it (a RAM boot, a new release), the slim console runs and
//! the boot says why, so the way in never depends on an image that is not there.

use berth_config::{ConsoleKind, Loaded};

/// The service that is the console.
pub const SERVICE: &str = "console";

/// The image tag of `kind`'s console in release `version`.
pub fn image_tag(kind: ConsoleKind, version: &str) -> String {
    kind.image().replace("${BERTH_VERSION}", version)
}

/// The console the `console` service of `loaded` runs now (from its image).
pub fn current(loaded: &Loaded) -> Option<ConsoleKind> {
    let spec = loaded
        .config
        .berth
        .services
        .iter()
        .find(|(k, _)| k.as_str() == SERVICE)?
        .1;
    ConsoleKind::ALL
        .into_iter()
        .find(|k| spec.image.as_str() == k.image())
}

/// Point the built-in console definition at the image of `kind`.
pub fn set(loaded: &mut Loaded, kind: ConsoleKind) {
    let Some((_, spec)) = loaded
        .config
        .berth
        .services
        .iter_mut()
        .find(|(k, _)| k.as_str() == SERVICE)
    else {
        return;
    };
    let builtin = ConsoleKind::ALL
        .into_iter()
        .any(|k| spec.image.as_str() == k.image());
    if !builtin {
        return;
    }
    match kind.image().parse() {
        Ok(image) => spec.image = image,
        Err(e) => tracing::warn!("console image {}: {e}", kind.image()),
    }
}

/// `loaded` with the console `berth.console` names.
pub fn apply(loaded: &mut Loaded) {
    let kind = loaded.config.berth.console;
    set(loaded, kind);
}

/// The slim console instead of one whose image System Docker lacks, with the reason.
pub async fn fall_back_if_missing(
    docker: &bollard::Docker,
    mut loaded: Loaded,
    problem: &(dyn Fn(&str) + Sync),
) -> Loaded {
    let Some(kind) = current(&loaded).filter(|k| *k != ConsoleKind::Default) else {
        return loaded;
    };
    let tag = image_tag(kind, crate::VERSION);
    if docker.inspect_image(&tag).await.is_ok() {
        return loaded;
    }
    problem(&format!(
        "berth.console is {} but System Docker has no image {tag} (it is not part of the \
         release's image store: without a state disk it is gone after a reboot); the default \
         console runs. Load it again with `sudo berth console switch {}` (--from FILE|URL)",
        kind.as_str(),
        kind.as_str()
    ));
    set(&mut loaded, ConsoleKind::Default);
    loaded
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::tests::loaded;

    const CONSOLE: &str = "berth:\n  services:\n    console:\n      image: berth/console:${BERTH_VERSION}\n";

    #[test]
    fn the_debian_console_swaps_the_builtin_image() {
        let mut l = loaded(&format!("{CONSOLE}  console: debian\n"));
        assert_eq!(current(&l), Some(ConsoleKind::Default));
        apply(&mut l);
        assert_eq!(current(&l), Some(ConsoleKind::Debian));
        let mut l = loaded(CONSOLE);
        apply(&mut l);
        assert_eq!(current(&l), Some(ConsoleKind::Default));
    }

    #[test]
    fn a_console_of_the_users_own_is_left_alone() {
        let mut l =
            loaded("berth:\n  console: debian\n  services:\n    console:\n      image: me/console:1\n");
        apply(&mut l);
        assert_eq!(current(&l), None);
        let (_, spec) = l.config.berth.services.iter().next().unwrap();
        assert_eq!(spec.image.as_str(), "me/console:1");
    }

    #[test]
    fn image_tags_carry_the_release() {
        assert_eq!(image_tag(ConsoleKind::Debian, "1.2"), "berth/console-debian:1.2");
        assert_eq!(image_tag(ConsoleKind::Default, "1.2"), "berth/console:1.2");
    }
}
