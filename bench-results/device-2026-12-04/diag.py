# CPU time and context switches per run, gmp vs go, at 2 and 16 procs (device diagnosis).
import os, resource, subprocess, time, sys
out = open(os.path.join(os.environ.get('OUT', '/tmp'), 'diag.txt'), 'w')
def run(peer, bench, procs, env=None):
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.time()
    p = subprocess.run([f'dev/bin/peer-{peer}', bench, '--procs', str(procs)], capture_output=True, text=True, timeout=60, env=env)
    wall = time.time() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    res = ' '.join(l.split('value=')[1].split()[0] for l in p.stdout.splitlines() if l.startswith('RESULT'))
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    sys_ = r1.ru_stime - r0.ru_stime
    vcs = r1.ru_nvcsw - r0.ru_nvcsw; ivcs = r1.ru_nivcsw - r0.ru_nivcsw
    line = f"{bench:9} {peer:5} procs={procs:2} value={res:>10} wall={wall:6.3f}s cpu={cpu:7.3f}s sys={sys_:6.3f}s cpu/wall={cpu/wall:5.2f} vcsw={vcs:8} ivcsw={ivcs:7}"
    if env and 'GMP_SCHEDTRACE' in env:
        line += '\n' + '\n'.join('    ' + l for l in p.stderr.splitlines() if l.startswith('SCHED'))[:3000]
    print(line, file=out, flush=True)
deadline = time.time() + 170
for rep in range(3):
    for bench in ['pingpong', 'mpmc', 'spawn', 'mpmc0', 'waitgroup']:
        for procs in [2, 16]:
            for peer in ['gmp', 'go']:
                if time.time() > deadline: sys.exit(0)
                run(peer, bench, procs)
for bench in ['pingpong', 'mpmc']:
    if time.time() > deadline: break
    run('gmp', bench, 16, dict(os.environ, GMP_SCHEDTRACE='20'))
