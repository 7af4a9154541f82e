fn main() {
    println!("h2ovl {}", env!("H2OVL_GIT_COMMIT"));
}
