/// A throwaway single-node Slurm cluster on localhost for the tests: its own munge daemon (own key and socket), a
/// slurmctld and a slurmd on unused ports, everything under a temporary folder, stopped by their PIDs afterwards.
/// Needs Debian's slurm-wlm and munge, and root (slurmd starts jobs as their user).
module Mpo.Experiments.Tests.Runs.LocalSlurm

open System
open System.Diagnostics
open System.IO
open System.Threading

let private which (name: string) =
    (Environment.GetEnvironmentVariable "PATH").Split(':')
    |> Array.append [| "/usr/sbin"; "/usr/bin"; "/sbin" |]
    |> Array.map (fun d -> Path.Combine(d, name))
    |> Array.tryFind File.Exists

/// Why the cluster cannot be started here, if it cannot.
let unavailable () =
    let missing = [ "munged"; "slurmctld"; "slurmd"; "sbatch"; "squeue"; "scancel" ] |> List.filter (fun c -> (which c).IsNone)
    if not missing.IsEmpty then
        Some(sprintf "Slurm is not installed (%s missing; apt-get install slurm-wlm munge, as .ci/run does)" (String.Join(", ", missing)))
    elif Environment.UserName <> "root" then Some "the local Slurm cluster needs root (slurmd runs jobs as their user)"
    else None

let private run (file: string) (args: string list) (env: (string * string) list) =
    let psi = ProcessStartInfo(file, args, RedirectStandardOutput = true, RedirectStandardError = true)
    for k, v in env do psi.Environment.[k] <- v
    use p = Process.Start psi
    let out = p.StandardOutput.ReadToEnd()
    let err = p.StandardError.ReadToEnd()
    p.WaitForExit()
    p.ExitCode, out + err

type Cluster(root: string) =
    let conf = Path.Combine(root, "slurm.conf")
    member _.Root = root
    member _.Conf = conf
    /// The environment the Slurm commands (and mpo run --slurm) need.
    member _.Env = [ "SLURM_CONF", conf ]
    member c.Command (name: string) (args: string list) = run (which name).Value args c.Env
    interface IDisposable with
        member _.Dispose() =
            for pid in [ "slurmd.pid"; "slurmctld.pid"; "munged.pid" ] do
                let file = Path.Combine(root, "run", pid)
                if File.Exists file then
                    try
                        use p = Process.GetProcessById(int (File.ReadAllText(file).Trim()))
                        p.Kill()
                        p.WaitForExit 10_000 |> ignore
                    with _ -> ()
            try Directory.Delete(root, true) with _ -> ()

let private freePort () =
    let l = new Net.Sockets.TcpListener(Net.IPAddress.Loopback, 0)
    l.Start()
    let port = (l.LocalEndpoint :?> Net.IPEndPoint).Port
    l.Stop()
    port

/// Starts the cluster and waits until its node is idle.
let start () =
    let root = Directory.CreateTempSubdirectory("mpo-slurm-").FullName
    let runDir, logDir = Path.Combine(root, "run"), Path.Combine(root, "log")
    for d in [ "state"; "spool"; "log"; "run" ] do Directory.CreateDirectory(Path.Combine(root, d)) |> ignore
    let cluster = new Cluster(root)
    try
        let key = Path.Combine(root, "munge.key")
        File.WriteAllBytes(key, Security.Cryptography.RandomNumberGenerator.GetBytes 1024)
        File.SetUnixFileMode(key, UnixFileMode.UserRead)
        let socket = Path.Combine(root, "run", "munge.sock")
        let code, output =
            run (which "munged").Value
                [ "--force"; $"--key-file={key}"; $"--socket={socket}"; $"--pid-file={runDir}/munged.pid"
                  $"--log-file={logDir}/munged.log"; $"--seed-file={runDir}/munge.seed" ] []
        if code <> 0 then failwithf "munged did not start: %s" output
        let host = Net.Dns.GetHostName().Split('.').[0]
        let memory = (GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / 1024L / 1024L) / 2L
        // no cgroup.conf: Slurm 22.05 has no CgroupPlugin=disabled and slurmd refuses to start with one
        File.WriteAllLines(
            cluster.Conf,
            [ "ClusterName=mpotest"
              $"SlurmctldHost={host}(127.0.0.1)"
              $"SlurmctldPort={freePort ()}"
              $"SlurmdPort={freePort ()}"
              "AuthType=auth/munge"
              $"AuthInfo=socket={socket}"
              "CredType=cred/munge"
              $"StateSaveLocation={root}/state"
              $"SlurmdSpoolDir={root}/spool"
              $"SlurmctldPidFile={runDir}/slurmctld.pid"
              $"SlurmdPidFile={runDir}/slurmd.pid"
              $"SlurmctldLogFile={logDir}/slurmctld.log"
              $"SlurmdLogFile={logDir}/slurmd.log"
              "ProctrackType=proctrack/linuxproc"
              "TaskPlugin=task/none"
              "SelectType=select/cons_tres"
              "SelectTypeParameters=CR_Core"
              "ReturnToService=2"
              "SlurmUser=root"
              "SlurmdUser=root"
              "JobAcctGatherType=jobacct_gather/none"
              "AccountingStorageType=accounting_storage/none"
              "MpiDefault=none"
              "SchedulerParameters=sched_interval=1"
              $"NodeName={host} NodeAddr=127.0.0.1 CPUs={Environment.ProcessorCount} RealMemory={memory} State=UNKNOWN"
              $"PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP" ])
        for daemon in [ "slurmctld"; "slurmd" ] do
            let code, output = run (which daemon).Value [ "-f"; cluster.Conf ] cluster.Env
            if code <> 0 then failwithf "%s did not start: %s" daemon output
        let clock = Stopwatch.StartNew()
        let rec wait () =
            let _, state = cluster.Command "sinfo" [ "-h"; "-o"; "%T" ]
            if state.Trim() = "idle" then ()
            elif clock.Elapsed.TotalSeconds > 30.0 then
                failwithf "the Slurm node did not become idle in 30 s (sinfo: %s); logs in %s" (state.Trim()) (Path.Combine(root, "log"))
            else
                Thread.Sleep 300
                wait ()
        wait ()
        cluster
    with _ ->
        (cluster :> IDisposable).Dispose()
        reraise ()
