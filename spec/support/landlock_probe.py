# The attacks of spec/landlock_spec.lua, from inside a run: writes, reads and
# execs outside the allowed paths, a signal to a process of the host and a
# connect to the host's abstract unix socket, beside what must keep working.
# One line per check: "<name> ok" or "<name> <ERRNO>".
# argv: work outside secret target_pid abstract_name
import errno, os, signal, socket, subprocess, sys

WORK, OUTSIDE, SECRET, TARGET, ABSTRACT = sys.argv[1:6]
TAG = 'agentbox-ll-%d' % os.getpid()

def say(name, v):
    print(name, v, flush=True)

def check(name, fn):
    try:
        fn()
        say(name, 'ok')
    except OSError as ex:
        say(name, errno.errorcode.get(ex.errno, str(ex.errno)))

def write(path, remove=True):
    def fn():
        with open(path, 'w') as f: f.write('x')
        if remove: os.unlink(path)   # the attack worked: leave nothing behind
    return fn

def read(path):
    def fn():
        with open(path) as f: f.read()
    return fn

def run(argv):
    def fn():
        subprocess.run(argv, check=True)
    return fn

check('write_work', write(os.path.join(WORK, 'f'), remove=False))
check('write_outside', write(os.path.join(OUTSIDE, TAG)))
check('write_var_tmp', write('/var/tmp/' + TAG))
check('write_tmp', write('/tmp/' + TAG))
check('write_home', write(os.path.join(os.path.expanduser('~'), TAG)))
def mkdir_outside():
    d = os.path.join(OUTSIDE, TAG + 'd')
    os.mkdir(d)
    os.rmdir(d)
check('mkdir_outside', mkdir_outside)
check('truncate_outside', lambda: os.truncate(os.path.join(OUTSIDE, 'existing'), 0))
check('write_dev_null', write('/dev/null', remove=False))   # never unlinked
check('read_secret', read(SECRET))
check('list_outside', lambda: os.listdir(OUTSIDE))
check('list_home', lambda: os.listdir(os.path.expanduser('~')))
check('read_etc', read('/etc/hostname'))
check('exec_sh', run(['/bin/sh', '-c', 'true']))
check('exec_work', run([os.path.join(WORK, 'true')]))
check('exec_outside', run([os.path.join(OUTSIDE, 'true')]))

# signals: our own child yes, a process of the host no
def own_child():
    p = subprocess.Popen(['sleep', '30'])
    os.kill(p.pid, signal.SIGTERM)
    p.wait()
check('kill_own_child', own_child)
check('kill_host', lambda: os.kill(int(TARGET), signal.SIGTERM))

# abstract unix sockets: our own yes, the host's no
def own_socket():
    s = socket.socket(socket.AF_UNIX)
    s.bind('\0' + TAG)
    s.listen(1)
    c = socket.socket(socket.AF_UNIX)
    c.connect('\0' + TAG)
    c.close()
    s.close()
check('abstract_own', own_socket)
def host_socket():
    c = socket.socket(socket.AF_UNIX)
    c.connect('\0' + ABSTRACT)
    if c.recv(5) != b'hello': raise OSError(errno.EPROTO, 'no greeting')
    c.close()
check('abstract_host', host_socket)
say('done', 'ok')
