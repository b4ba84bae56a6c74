//! `kreki`: see `kreki --help`. All logic lives in the library ([`kreki::cli`]).

fn main() -> std::process::ExitCode {
    kreki::cli::main()
}
