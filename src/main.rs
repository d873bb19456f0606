fn main() -> std::process::ExitCode {
    meridian::cli::main()
}
