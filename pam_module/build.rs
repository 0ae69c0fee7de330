fn main() {
    // The module calls libpam itself (pam_get_user, pam_prompt, pam_syslog):
    // link it explicitly rather than rely on the host having loaded it.
    println!("cargo:rustc-link-lib=dylib=pam");
}
