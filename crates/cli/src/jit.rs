//! `kpool jit`: compile a C, C++ or Fortran source at run time (or find it in the cache)
//! and run it on any executor: an element function over `--map` values, a range kernel
//! over `--n` items with its own `--sig`nature or a built-in `--contract`; or show and
//! clear the cache.

use crate::{ExecArgs, ExecKind, fmt_duration, make_executor};
use kernelpool::jit::{Cache, Jit, JitError, Source};
use kernelpool::kernels::{
    Buffer, Elem, Executor, KernelName, Lang, Options, Signature, Step, StepArgs, programs,
};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

/// Element type of an element function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ElemType {
    /// `int64_t f(int64_t)`
    I64,
    /// `double f(double)`
    F64,
}

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
    kpool jit examples/jit/seed.c --symbol f --map 1,2,3 --exec processes\n  \
    kpool jit examples/jit/seed_range.c --symbol seed_sum --sig \"out i64[items], sum i64\" --iparam 10000000 --n 3\n  \
    kpool jit native/c/kernels.c --symbol kp_c_mandelbrot --contract mandelbrot --n 200 > m.pbm\n  \
    kpool jit --cache-info\n\n\
    Signature specs (--sig): comma-separated buffers `in|out|inout TYPE[LEN]` (TYPE i64, f64, u8; \
    LEN items, K*items, n, K*n, n*ceil(n/8) or a number), partial slots `sum|max|min i64|f64`, and \
    checks such as `iparam[0]>=0` or `n<=12`. Written buffers are printed one value per line, in \
    slot order, then the partial slots, one per line.\n\n\
    The cache is $KERNELPOOL_CACHE_DIR, else $XDG_CACHE_HOME/kernelpool, else ~/.cache/kernelpool.")]
pub struct JitArgs {
    /// Source file: C (.c), C++ (.cpp, .cc, .cxx) or Fortran (.f90, .f95, .f03, .f08, .f).
    #[arg(required_unless_present_any = ["cache_info", "clear_cache"])]
    file: Option<PathBuf>,
    /// The element function (with --map) or the range kernel (with --n / --contract).
    #[arg(long, required_unless_present_any = ["cache_info", "clear_cache"])]
    symbol: Option<String>,
    /// Language, when the extension does not say: c, cpp, fortran.
    #[arg(long)]
    lang: Option<String>,
    /// Compiler flags after the project's (split at spaces; may be repeated).
    #[arg(long, allow_hyphen_values = true)]
    flags: Vec<String>,
    /// Apply the element function to these comma-separated values and print the list.
    #[arg(long, allow_hyphen_values = true, conflicts_with_all = ["n", "sig", "contract"])]
    map: Option<String>,
    /// The element function's type (default: i64 when every --map value is an integer,
    /// else f64).
    #[arg(long = "type", value_enum)]
    elem: Option<ElemType>,
    /// Run the range kernel over N (the step's n; items = N unless --items).
    #[arg(long)]
    n: Option<u64>,
    /// Items of the range kernel's step (default: N).
    #[arg(long)]
    items: Option<u64>,
    /// The range kernel's own signature, e.g. `in f64[items], out f64[items], sum f64`.
    #[arg(long, conflicts_with = "contract")]
    sig: Option<String>,
    /// The range kernel follows this built-in kernel's contract: its program runs it
    /// (N defaults to the reference size).
    #[arg(long)]
    contract: Option<String>,
    /// Integer parameters of the step (kp_kargs.iparam), comma-separated.
    #[arg(long, allow_hyphen_values = true)]
    iparam: Option<String>,
    /// Floating-point parameters of the step (kp_kargs.fparam), comma-separated.
    #[arg(long, allow_hyphen_values = true)]
    fparam: Option<String>,
    /// Executor.
    #[arg(long = "exec", value_enum, default_value = "serial")]
    exec_kind: ExecKind,
    #[command(flatten)]
    exec: ExecArgs,
    /// Print compile, load and run times on stderr.
    #[arg(long)]
    timings: bool,
    /// Show the cache: directory, entries, size.
    #[arg(long, conflicts_with = "file")]
    cache_info: bool,
    /// Remove every compiled kernel from the cache.
    #[arg(long, conflicts_with = "file")]
    clear_cache: bool,
}

/// `kpool jit`.
///
/// # Errors
/// A message for `kpool: error: ...` (exit status 2): bad arguments, compile errors with
/// the compiler's diagnostics, a missing compiler or symbol, an unsafe cache directory,
/// the kernel's or executor's failure.
pub fn jit(args: &JitArgs) -> Result<ExitCode, String> {
    let text = |e: JitError| e.to_string();
    if args.cache_info || args.clear_cache {
        let cache = Cache::from_env().map_err(text)?;
        if args.clear_cache {
            let n = cache.clear().map_err(text)?;
            println!(
                "removed {n} compiled kernels from {}",
                cache.dir().display()
            );
        }
        if args.cache_info {
            let info = cache.info().map_err(text)?;
            println!("cache:   {}", info.dir.display());
            println!("entries: {}", info.entries);
            println!(
                "size:    {} of at most {}",
                fmt_bytes(info.bytes),
                fmt_bytes(info.max_bytes)
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let (Some(file), Some(symbol)) = (&args.file, &args.symbol) else {
        return Err("kpool jit needs a source file and --symbol".into());
    };
    let mut src = Source::file(file).map_err(text)?;
    if let Some(l) = &args.lang {
        let lang: Lang = l
            .parse()
            .map_err(|e: kernelpool::kernels::Error| e.to_string())?;
        src = src.with_lang(lang);
    }
    let flags: Vec<String> = args
        .flags
        .iter()
        .flat_map(|f| f.split_whitespace())
        .map(str::to_string)
        .collect();
    let jit = Jit::new().map_err(text)?.flags(flags);
    let exec = make_executor(&args.exec, args.exec_kind)?;
    let result = run_kernel(args, &jit, &src, file, symbol, &*exec);
    // Under MPI only rank 0 prints: the output, and the error every rank shares. The
    // error is printed here, while the executor lives: the other ranks' exit (after
    // finalising MPI, which waits for this rank) may end the job at once.
    match result {
        Err(e) if exec.is_root() => {
            eprintln!("kpool: error: {e}");
            Ok(ExitCode::from(2))
        }
        Err(_) => Ok(ExitCode::from(2)),
        Ok(code) if exec.is_root() => Ok(code),
        Ok(_) => Ok(ExitCode::SUCCESS),
    }
}

/// Compile or load `symbol` and run it on `exec` (`kpool jit` past the cache options).
fn run_kernel(
    args: &JitArgs,
    jit: &Jit,
    src: &Source,
    file: &Path,
    symbol: &str,
    exec: &dyn Executor,
) -> Result<ExitCode, String> {
    // A compilation that fails here may succeed on the other MPI ranks: see `alone`.
    let text = |e: JitError| alone(e.to_string());
    let root = exec.is_root();
    if let Some(values) = &args.map {
        return map(args, jit, src, symbol, values, exec);
    }
    if let Some(contract) = &args.contract {
        let kernel: KernelName = contract
            .parse()
            .map_err(|e: kernelpool::kernels::Error| e.to_string())?;
        // SAFETY: the user vouches that `symbol` keeps to the contract they named (as
        // with `Kernel::load`); this is what `kpool jit --contract` is for.
        let k = unsafe { jit.range_kernel(src, symbol, kernel) }.map_err(text)?;
        let mut opts = Options::new();
        opts.n = args.n;
        let t = Instant::now();
        let out = programs::run(k.kernel().clone(), &opts, exec).map_err(|e| e.to_string())?;
        let ran = t.elapsed();
        if root {
            write_stdout(&out.stdout)?;
            timings(args, file, symbol, k.build(), exec, ran);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let Some(n) = args.n else {
        return Err("give --map VALUES (an element function) or --n N (a range kernel)".into());
    };
    let Some(spec) = &args.sig else {
        return Err(
            "a range kernel needs its signature: --sig SPEC (e.g. \"out i64[items], sum i64\") \
             or --contract KERNEL"
                .into(),
        );
    };
    let sig = Signature::parse(symbol, spec).map_err(|e| e.to_string())?;
    let contract = KernelName::custom(sig).map_err(|e| e.to_string())?;
    let mut step_args = StepArgs::new(n, args.items.unwrap_or(n));
    parse_params(args.iparam.as_deref(), "--iparam", &mut step_args.iparam)?;
    parse_params(args.fparam.as_deref(), "--fparam", &mut step_args.fparam)?;
    let sig = contract.signature();
    let lens = sig.buffers_for(&step_args).map_err(|e| e.to_string())?;
    exec.check_items(step_args.items)
        .map_err(|e| e.to_string())?;
    // SAFETY: the user vouches that `symbol` keeps to the signature they gave (as with
    // `Kernel::load_with_signature`); this is what `kpool jit --sig` is for.
    let k = unsafe { jit.range_kernel(src, symbol, contract) }.map_err(text)?;
    let mut bufs = Vec::with_capacity(lens.len());
    for (i, (elem, len)) in lens.iter().enumerate() {
        let len = len
            .and_then(|l| usize::try_from(l).ok())
            .ok_or_else(|| format!("buffer {i} of --sig has no length kpool jit can allocate"))?;
        bufs.push(
            exec.alloc(*elem, len, &format!("buffer {i}"))
                .map_err(|e| e.to_string())?,
        );
    }
    let t = Instant::now();
    let partial = {
        let step =
            Step::new(k.kernel().clone(), step_args, bufs.iter_mut()).map_err(|e| e.to_string())?;
        exec.run(&step).map_err(|e| e.to_string())?
    };
    for (b, spec) in bufs.iter_mut().zip(sig.buffers()) {
        if spec.access.writes() {
            exec.gather(b).map_err(|e| e.to_string())?;
        }
    }
    let ran = t.elapsed();
    if !root {
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = String::new();
    for (b, spec) in bufs.iter().zip(sig.buffers()) {
        if spec.access.writes() {
            print_buffer(&mut out, b);
        }
    }
    for (i, op) in sig.partials().iter().enumerate() {
        if op.is_float() {
            out += &format!("{:?}\n", partial.float(i));
        } else {
            out += &format!("{}\n", partial.int(i));
        }
    }
    write_stdout(out.as_bytes())?;
    timings(args, file, symbol, k.build(), exec, ran);
    Ok(ExitCode::SUCCESS)
}

/// A failure of this process alone (compiling or loading the kernel): under an MPI job of
/// several ranks the others would wait for this one in their next collective call, so it
/// says what failed and ends the whole job (`MPI_Abort`); otherwise the error returns.
fn alone(message: String) -> String {
    #[cfg(feature = "mpi")]
    kernelpool::pool::mpi_abort_job(2, &format!("kpool: error: {message}"));
    message
}

/// `kpool jit FILE --symbol f --map 1,2,3`: prints `[f(1), f(2), f(3)]`.
fn map(
    args: &JitArgs,
    jit: &Jit,
    src: &Source,
    symbol: &str,
    values: &str,
    exec: &dyn Executor,
) -> Result<ExitCode, String> {
    let words: Vec<&str> = values
        .split(',')
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .collect();
    let elem = args.elem.unwrap_or_else(|| {
        if words.iter().all(|w| w.parse::<i64>().is_ok()) {
            ElemType::I64
        } else {
            ElemType::F64
        }
    });
    let hint = |e: JitError| match (&e, args.elem) {
        (JitError::WrongSignature { .. }, None) => format!(
            "{e}\n(the --map values made it {}; --type {} for the other)",
            match elem {
                ElemType::I64 => "int64_t f(int64_t)",
                ElemType::F64 => "double f(double)",
            },
            match elem {
                ElemType::I64 => "f64",
                ElemType::F64 => "i64",
            }
        ),
        _ => e.to_string(),
    };
    let t;
    let (text, build) = match elem {
        ElemType::I64 => {
            let xs = parse_list::<i64>(&words, "an integer (--type i64)")?;
            // SAFETY: the user vouches for their element function (a pure function of
            // its argument); running it is what `kpool jit --map` is for.
            let f = unsafe { jit.element_fn::<i64>(src, symbol) }.map_err(|e| alone(hint(e)))?;
            t = Instant::now();
            let ys = f.map(&xs, exec).map_err(|e| e.to_string())?;
            (format!("{ys:?}\n"), f.build().clone())
        }
        ElemType::F64 => {
            let xs = parse_list::<f64>(&words, "a number")?;
            // SAFETY: as above.
            let f = unsafe { jit.element_fn::<f64>(src, symbol) }.map_err(|e| alone(hint(e)))?;
            t = Instant::now();
            let ys = f.map(&xs, exec).map_err(|e| e.to_string())?;
            (format!("{ys:?}\n"), f.build().clone())
        }
    };
    let ran = t.elapsed();
    if !exec.is_root() {
        return Ok(ExitCode::SUCCESS);
    }
    write_stdout(text.as_bytes())?;
    let file = args.file.as_deref().unwrap_or(std::path::Path::new("?"));
    timings(args, file, symbol, &build, exec, ran);
    Ok(ExitCode::SUCCESS)
}

fn parse_list<T: std::str::FromStr>(words: &[&str], what: &str) -> Result<Vec<T>, String> {
    words
        .iter()
        .map(|w| w.parse().map_err(|_| format!("--map: `{w}` is not {what}")))
        .collect()
}

fn parse_params<T: std::str::FromStr>(
    list: Option<&str>,
    flag: &str,
    out: &mut [T; 4],
) -> Result<(), String> {
    let Some(list) = list else { return Ok(()) };
    let words: Vec<&str> = list.split(',').map(str::trim).collect();
    if words.len() > 4 {
        return Err(format!("{flag}: at most 4 values, got {}", words.len()));
    }
    for (slot, w) in out.iter_mut().zip(words) {
        *slot = w
            .parse()
            .map_err(|_| format!("{flag}: `{w}` is not a number of the parameter's type"))?;
    }
    Ok(())
}

fn print_buffer(out: &mut String, b: &Buffer) {
    use std::fmt::Write as _;
    match b.elem() {
        Elem::I64 => b
            .as_slice::<i64>()
            .unwrap_or_default()
            .iter()
            .for_each(|v| {
                let _ = writeln!(out, "{v}");
            }),
        Elem::F64 => b
            .as_slice::<f64>()
            .unwrap_or_default()
            .iter()
            .for_each(|v| {
                let _ = writeln!(out, "{v:?}");
            }),
        _ => b.as_slice::<u8>().unwrap_or_default().iter().for_each(|v| {
            let _ = writeln!(out, "{v}");
        }),
    }
}

fn write_stdout(bytes: &[u8]) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|_| out.flush())
        .map_err(|e| format!("writing stdout: {e}"))
}

fn timings(
    args: &JitArgs,
    file: &std::path::Path,
    symbol: &str,
    build: &kernelpool::jit::Build,
    exec: &dyn Executor,
    ran: std::time::Duration,
) {
    if !args.timings {
        return;
    }
    let how = if build.cached {
        "cache hit".to_string()
    } else {
        format!("compiled in {}", fmt_duration(build.compile_time))
    };
    eprintln!(
        "kpool: jit {}:{symbol}: {how}, loaded in {} ({} in all), run on {} in {}",
        file.display(),
        fmt_duration(build.total_time.saturating_sub(build.compile_time)),
        fmt_duration(build.total_time),
        exec.describe(),
        fmt_duration(ran)
    );
    eprintln!(
        "kpool: jit library {} (target CPU {})",
        build.library.display(),
        build.target_cpu
    );
}

/// `12.3 KiB`.
fn fmt_bytes(b: u64) -> String {
    let b = b as f64;
    if b >= (1u64 << 30) as f64 {
        format!("{:.1} GiB", b / (1u64 << 30) as f64)
    } else if b >= (1u64 << 20) as f64 {
        format!("{:.1} MiB", b / (1u64 << 20) as f64)
    } else if b >= 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{b} bytes")
    }
}
