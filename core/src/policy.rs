//! Who must use a second factor: a pure function of the user, the user's
//! groups and the policy lists.

/// Whether `user` (member of `groups`) must use a second factor. An
/// exemption wins over a requirement; an empty `require_groups` covers
/// everyone.
pub fn covered(
    user: &str,
    groups: &[String],
    require_groups: &[String],
    exempt_users: &[String],
    exempt_groups: &[String],
) -> bool {
    let member = |list: &[String]| groups.iter().any(|g| list.contains(g));
    if exempt_users.iter().any(|u| u == user) || member(exempt_groups) {
        return false;
    }
    require_groups.is_empty() || member(require_groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn everyone_is_covered_by_default() {
        assert!(covered("alice", &v(&["staff"]), &[], &[], &[]));
    }

    #[test]
    fn required_groups_cover_only_their_members() {
        assert!(covered("alice", &v(&["staff", "admins"]), &v(&["admins"]), &[], &[]));
        assert!(!covered("bob", &v(&["staff"]), &v(&["admins"]), &[], &[]));
    }

    #[test]
    fn exemptions_win() {
        assert!(!covered("svc", &v(&["admins"]), &v(&["admins"]), &v(&["svc"]), &[]));
        assert!(!covered("bot", &v(&["admins", "robots"]), &v(&["admins"]), &[], &v(&["robots"])));
    }
}
