fn main() -> std::process::ExitCode {
    nova::cli::main()
}
