//! Whether a config file may be trusted, as sshd's StrictModes decides it:
//! the file and every directory above it are owned by root and writable by
//! no one else. A config names the bus the PAM module believes; one that a
//! user can change would let that user answer "accepted" to every login.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Writable by group or others.
const GROUP_OR_OTHER_WRITE: u32 = 0o022;
/// The sticky bit: in such a directory (/tmp) no one but root and an
/// entry's owner can remove or rename that entry.
const STICKY: u32 = 0o1000;

/// Ok when only root can change `path`: the file and each directory on
/// its way from `/`. Else what is wrong and how to fix it.
pub fn only_root_can_change(path: &Path) -> Result<(), String> {
    only_owner_can_change(path, 0)
}

/// The rule with `owner` trusted beside root (so that anyone can test it).
fn only_owner_can_change(path: &Path, owner: u32) -> Result<(), String> {
    if !path.is_absolute() {
        return Err("the config path must be absolute".to_string());
    }
    for step in path.ancestors() {
        let meta = std::fs::symlink_metadata(step)
            .map_err(|e| format!("cannot check {}: {e}", step.display()))?;
        let (kind, mode) = (meta.file_type(), meta.mode() & 0o7777);
        if kind.is_symlink() {
            return Err(format!(
                "{} is a symbolic link: name the file by its real path",
                step.display()
            ));
        }
        if meta.uid() != 0 && meta.uid() != owner {
            return Err(format!(
                "{} is owned by uid {}, not root: chown root {}",
                step.display(),
                meta.uid(),
                step.display()
            ));
        }
        let shared_but_sticky = kind.is_dir() && mode & STICKY != 0;
        if mode & GROUP_OR_OTHER_WRITE != 0 && !shared_but_sticky {
            return Err(format!(
                "{} is writable by group or others (mode {mode:04o}): chmod go-w {}",
                step.display(),
                step.display()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    fn me() -> u32 {
        fs::metadata("/proc/self").unwrap().uid()
    }

    /// A dir (0755) holding config.toml (0644), both the runner's.
    fn setup() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let file = dir.path().join("config.toml");
        fs::write(&file, "").unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
        (dir, file)
    }

    #[test]
    fn a_file_only_its_owner_can_change_is_trusted() {
        let (_dir, file) = setup();
        assert_eq!(only_owner_can_change(&file, me()), Ok(()));
    }

    #[test]
    fn a_file_others_can_write_is_refused_with_the_fix() {
        let (_dir, file) = setup();
        for mode in [0o666, 0o664, 0o646] {
            fs::set_permissions(&file, fs::Permissions::from_mode(mode)).unwrap();
            let e = only_owner_can_change(&file, me()).unwrap_err();
            assert!(e.contains("writable by group or others"), "{e}");
            assert!(e.contains(&format!("chmod go-w {}", file.display())), "{e}");
        }
    }

    #[test]
    fn a_directory_others_can_write_is_refused_unless_sticky() {
        let (dir, file) = setup();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
        let e = only_owner_can_change(&file, me()).unwrap_err();
        assert!(
            e.contains(&format!("{} is writable by group or others", dir.path().display())),
            "{e}"
        );
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o1777)).unwrap();
        assert_eq!(only_owner_can_change(&file, me()), Ok(()));
    }

    #[test]
    fn a_symbolic_link_or_a_relative_path_is_refused() {
        let (dir, file) = setup();
        let link = dir.path().join("link.toml");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let e = only_owner_can_change(&link, me()).unwrap_err();
        assert!(e.contains("is a symbolic link"), "{e}");
        let e = only_root_can_change(Path::new("config.toml")).unwrap_err();
        assert!(e.contains("absolute"), "{e}");
    }

    #[test]
    fn a_file_of_another_owner_is_refused() {
        let (_dir, file) = setup();
        if me() == 0 {
            // Root's files are trusted whoever else is: give the file away.
            std::os::unix::fs::chown(&file, Some(65534), None).unwrap();
        }
        let e = only_owner_can_change(&file, me() + 1).unwrap_err();
        assert!(e.contains("not root: chown root"), "{e}");
    }
}
