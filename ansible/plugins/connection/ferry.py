# ferry.py - Ansible connection plugin that reaches hosts through ferry.
#
# Every operation is one run of the ferry client: exec_command is one
# `ferry exec` (with pipelining the module goes to that command's stdin),
# put_file and fetch_file are `ferry put` / `ferry get` (checksummed and
# renamed into place only once verified).  Why it drives the binary rather
# than speaking the protocol from Python: docs/DESIGN.md, "Ansible".
#
# Written for ansible-core 2.14's connection interface (Debian 12).

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = '''
    name: ferry
    short_description: run tasks through ferry (ferryd on the managed hosts)
    description:
        - Runs each command with C(ferry exec) and moves files with C(ferry put) and C(ferry get),
          so a task costs ferry's connection (TLS 1.3 keyed by a shared key) instead of an ssh login.
        - Commands run as the user ferryd runs as, in its clean environment. C(remote_user) (C(ansible_user)) does
          not choose that user, but tells Ansible who it is; set it to ferryd's user (C(root) for a ferryd run as
          root) so that C(become) to an unprivileged user can hand it Ansible's temporary files.
          Use C(become) (sudo) to act as another user.
        - Files are transferred by ferryd's file service (C(ferry put), C(ferry get), checksummed and renamed into
          place once verified), whose paths are relative to the directory ferryd serves (C(ferryd --root)).
          I(remote_root) says which directory that is; a path Ansible transfers that lies outside it goes
          through C(ferry exec) and C(cat) instead (into a temporary, renamed once complete; Ansible's copy
          and fetch compare checksums either way). Keep C(remote_tmp) inside it to have every module file
          go through C(ferry put).
    author: ferry
    version_added: "2.14"
    notes:
        - Pipelining is on by default (the module is written to the command's stdin, one C(ferry exec) per module).
        - Options not set here come from ferry's host configuration (C(~/.config/ferry/config), or I(config_file)),
          then ferry's defaults (port 7171, key C(~/.config/ferry/key) or C($FERRY_KEY_FILE)).
        - ferry exits 255 when it cannot connect or authenticate; the plugin then reports the host unreachable
          with ferry's one-line message.  A remote command's own status 255 is returned as it is.
    options:
      host:
        description: Host name or address ferryd listens on (a name of ferry's host configuration works too).
        default: inventory_hostname
        vars:
          - name: inventory_hostname
          - name: ansible_host
          - name: ansible_ferry_host
          - name: delegated_vars['ansible_host']
      port:
        description: ferryd's port; when unset, the host configuration's C(Port), else 7171.
        type: int
        env:
          - name: ANSIBLE_FERRY_PORT
        ini:
          - section: ferry_connection
            key: port
        vars:
          - name: ansible_port
          - name: ansible_ferry_port
        keyword:
          - name: port
      key_file:
        description: The key file (C(ferry -k)); when unset, the host configuration's C(KeyFile), else ferry's default key.
        type: path
        env:
          - name: ANSIBLE_FERRY_KEY_FILE
        ini:
          - section: ferry_connection
            key: key_file
        vars:
          - name: ansible_ferry_key_file
      key_name:
        description: The name ferryd knows the key by in its C(--keys) file (C(ferry --key-name)).
        type: str
        env:
          - name: ANSIBLE_FERRY_KEY_NAME
        ini:
          - section: ferry_connection
            key: key_name
        vars:
          - name: ansible_ferry_key_name
      plaintext:
        description:
          - Talk to a ferryd started with C(--plaintext) (no TLS; the key still authenticates both sides).
          - When unset, the host configuration's C(Plaintext) decides (default TLS).
        type: bool
        env:
          - name: ANSIBLE_FERRY_PLAINTEXT
        ini:
          - section: ferry_connection
            key: plaintext
        vars:
          - name: ansible_ferry_plaintext
      config_file:
        description: Read ferry's host configuration from this file only (C(ferry -F)).
        type: path
        env:
          - name: ANSIBLE_FERRY_CONFIG
        ini:
          - section: ferry_connection
            key: config_file
        vars:
          - name: ansible_ferry_config
      ferry_executable:
        description: The ferry client to run (a name looked up in PATH, or a path).
        default: ferry
        type: str
        env:
          - name: ANSIBLE_FERRY_EXECUTABLE
        ini:
          - section: ferry_connection
            key: ferry_executable
        vars:
          - name: ansible_ferry_executable
      timeout:
        description:
          - Seconds to connect and authenticate (C(ferry --connect-timeout)); when unset, the host configuration's
            C(ConnectTimeout), else ferry's 10 s.
          - Also bounds the wait for become's password prompt.
        type: int
        env:
          - name: ANSIBLE_FERRY_TIMEOUT
        ini:
          - section: ferry_connection
            key: timeout
        vars:
          - name: ansible_ferry_timeout
      persist:
        description:
          - Seconds a connection master (C(ferry master), as ssh's ControlPersist) stays after the last
            command. The first task starts one (C(ferry --persist)), later ones take its ready sessions
            instead of making a TLS handshake each. 0 (the default) leaves it to the host configuration's
            C(Persist).
        default: 0
        type: int
        env:
          - name: ANSIBLE_FERRY_PERSIST
        ini:
          - section: ferry_connection
            key: persist
        vars:
          - name: ansible_ferry_persist
      remote_root:
        description:
          - The directory the managed host's ferryd serves (its C(--root)). The absolute paths Ansible transfers
            are sent to the file service relative to it; a path outside it goes through C(ferry exec) and C(cat).
        default: /
        type: str
        env:
          - name: ANSIBLE_FERRY_REMOTE_ROOT
        ini:
          - section: ferry_connection
            key: remote_root
        vars:
          - name: ansible_ferry_remote_root
      pipelining:
        description:
          - Send each module to the command's stdin (one C(ferry exec) per module) instead of copying it
            to the host first. On by default here, unlike ssh's plugin; sudo needs no terminal for it.
        default: true
        type: boolean
        env:
          - name: ANSIBLE_PIPELINING
          - name: ANSIBLE_FERRY_PIPELINING
        ini:
          - section: defaults
            key: pipelining
          - section: connection
            key: pipelining
          - section: ferry_connection
            key: pipelining
        vars:
          - name: ansible_pipelining
          - name: ansible_ferry_pipelining
'''

EXAMPLES = r'''
# inventory (INI)
# [web]
# web1 ansible_host=10.0.0.5
# web2 ansible_host=10.0.0.6 ansible_port=7272
# [web:vars]
# ansible_connection=ferry
# ansible_ferry_key_file=~/.config/ferry/web.key
'''

import os
import posixpath
import selectors
import shlex
import subprocess

from ansible.errors import AnsibleConnectionFailure, AnsibleError, AnsibleFileNotFound
from ansible.module_utils._text import to_bytes, to_native, to_text
from ansible.plugins.connection import ConnectionBase
from ansible.utils.display import Display

display = Display()

# ferry's exit status for its own failures (cannot connect, authentication,
# protocol); its one-line reason is the last line of stderr, "ferry: ...".
FERRY_FAILED = 255
FERRY_PREFIX = b'ferry: '
# put_file outside the served root: stdin into "$1.ferry-put", renamed over $1
PUT_SCRIPT = 'cat > "$1.ferry-put" && mv -f -- "$1.ferry-put" "$1" || { rm -f -- "$1.ferry-put"; exit 1; }'


def _command_operands(cmd):
    ''' What follows HOST on ferry exec's command line.  Ansible's command is
    "EXECUTABLE -c QUOTED" (ActionBase quotes it with shlex.quote); given
    as one operand, ferryd would run it with a /bin/sh -c of its own, a
    shell whose only work is to start EXECUTABLE (dash does not exec the
    last command).  Given as argv (["--", EXECUTABLE, "-c", INNER]) ferryd
    runs EXECUTABLE itself: one process less per module.  Only a command
    that is exactly that quoting of its three words is split; anything
    else goes as it is, one operand. '''
    text = to_text(cmd, errors='surrogate_or_strict')
    try:
        words = shlex.split(text)
    except ValueError:
        return [text]
    if (len(words) == 3 and words[1] == '-c' and posixpath.isabs(words[0])
            and text == '%s -c %s' % (shlex.quote(words[0]), shlex.quote(words[2]))):
        return ['--'] + words
    return [text]


def _last_line(b_text):
    lines = [line for line in b_text.splitlines() if line.strip()]
    return lines[-1] if lines else b''


class Connection(ConnectionBase):
    ''' ferry connection: one ferry client run per operation '''

    transport = 'ferry'
    has_pipelining = True

    # ---- the ferry command line ------------------------------------------

    def _host_operand(self):
        host = self.get_option('host') or self._play_context.remote_addr
        port = self.get_option('port')
        if port:
            # an IPv6 literal takes brackets once a port follows it
            return '[%s]:%d' % (host, port) if ':' in host else '%s:%d' % (host, port)
        return host

    def _argv(self, command, *args):
        ''' ferry [OPTIONS] COMMAND ARGS... with this host's options '''
        argv = [self.get_option('ferry_executable')]
        config = self.get_option('config_file')
        if config:
            argv += ['-F', config]
        key_file = self.get_option('key_file')
        if key_file:
            argv += ['-k', key_file]
        key_name = self.get_option('key_name')
        if key_name:
            argv += ['--key-name', key_name]
        if self.get_option('plaintext'):
            argv.append('--plaintext')
        timeout = self.get_option('timeout')
        if timeout:
            argv += ['--connect-timeout', str(timeout)]
        persist = self.get_option('persist')
        if persist:
            argv += ['--persist', str(persist)]
        argv.append(command)
        argv.extend(args)
        return argv

    def _spawn(self, argv, stdin, stdout=subprocess.PIPE):
        display.vvv(u'FERRY: %s' % u' '.join(to_text(a) for a in argv), host=self._play_context.remote_addr)
        try:
            return subprocess.Popen([to_bytes(a, errors='surrogate_or_strict') for a in argv],
                                    stdin=stdin, stdout=stdout, stderr=subprocess.PIPE)
        except OSError as e:
            raise AnsibleError('ferry connection: cannot run the ferry client %r: %s (install ferry, or set '
                               'ansible_ferry_executable / ANSIBLE_FERRY_EXECUTABLE to its path)'
                               % (argv[0], to_native(e)))

    def _check_reached(self, rc, b_stderr):
        ''' rc 255 with ferry's own "ferry: ..." line: the host was not reached '''
        line = _last_line(b_stderr)
        if rc == FERRY_FAILED and line.startswith(FERRY_PREFIX):
            raise AnsibleConnectionFailure(to_native(line))

    def _remote_path(self, path):
        ''' an absolute remote path -> the path ferryd takes, relative to
        its root; None when the path lies outside that root '''
        root = posixpath.normpath(self.get_option('remote_root') or '/')
        if not posixpath.isabs(path):
            return path                 # already relative to the served root
        path = posixpath.normpath(path)
        if root == '/':
            return path.lstrip('/') or '.'
        if path.startswith(root + '/'):
            return path[len(root) + 1:]
        return None

    # ---- the interface -----------------------------------------------------

    def _connect(self):
        ''' nothing to open: every operation is its own ferry connection '''
        self._connected = True
        return self

    def exec_command(self, cmd, in_data=None, sudoable=True):
        ''' run cmd with the remote /bin/sh -c, in_data on its stdin '''
        super(Connection, self).exec_command(cmd, in_data=in_data, sudoable=sudoable)

        prompt = bool(sudoable and self.become and self.become.expect_prompt())
        if in_data is None and not prompt:
            # nothing for stdin: ferry need not forward it
            p = self._spawn(self._argv('exec', '-n', self._host_operand(), *_command_operands(cmd)),
                            subprocess.DEVNULL)
            b_out, b_err = p.communicate()
        else:
            p = self._spawn(self._argv('exec', self._host_operand(), *_command_operands(cmd)), subprocess.PIPE)
            b_out = b_err = b''
            if prompt:
                b_out, b_err = self._escalate(p)
            out, err = p.communicate(in_data)
            b_out += out
            b_err += err
        self._check_reached(p.returncode, b_err)
        return (p.returncode, b_out, b_err)

    def _escalate(self, p):
        ''' As ssh's plugin does: wait for become's password prompt (or its
        success line, when no password is asked), answer it, and wait for
        the escalation's outcome before anything else goes to stdin: a
        second prompt would otherwise read the module as a password.
        Returns the output so far, the prompt left out. '''
        timeout = (self.get_option('timeout') or 10) + 2
        fds = {p.stdout.fileno(): 'out', p.stderr.fileno(): 'err'}
        got = {'out': b'', 'err': b''}
        sent = False
        failure = None
        sel = selectors.DefaultSelector()
        for fd in fds:
            os.set_blocking(fd, False)
            sel.register(fd, selectors.EVENT_READ)
        try:
            while sel.get_map() and not failure:
                events = sel.select(timeout)
                if not events:
                    failure = 'timeout (%d s) waiting for privilege escalation prompt: %s' % (
                        timeout, to_native(got['out'] + got['err']))
                    break
                for key, _ in events:
                    chunk = os.read(key.fd, 65536)
                    if not chunk:
                        sel.unregister(key.fd)
                    got[fds[key.fd]] += chunk
                seen = got['out'] + got['err']
                if self.become.check_success(seen):
                    break
                if self.become.check_incorrect_password(seen) or (sent and self._prompts(seen) > 1):
                    failure = 'Incorrect %s password' % self.become.name
                elif self.become.check_missing_password(seen):
                    failure = 'Missing %s password' % self.become.name
                elif not sent and self.become.check_password_prompt(seen):
                    b_pass = to_bytes(self.become.get_option('become_pass', playcontext=self._play_context),
                                      errors='surrogate_or_strict')
                    try:
                        p.stdin.write(b_pass + b'\n')
                        p.stdin.flush()
                    except BrokenPipeError:
                        pass            # ferry is gone; its status says why
                    sent = True
        finally:
            sel.close()
            for fd in fds:
                os.set_blocking(fd, True)
        if failure:
            p.kill()
            p.communicate()
            raise AnsibleError(failure)
        b_prompt = to_bytes(self.become.prompt)
        return got['out'].replace(b_prompt, b''), got['err'].replace(b_prompt, b'')

    def _prompts(self, b_output):
        return b_output.count(to_bytes(self.become.prompt).strip())

    def _run(self, what, argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE):
        ''' A ferry run that must succeed: its failure is an Ansible error
        with ferry's own line (AnsibleConnectionFailure when the host was
        not reached). '''
        p = self._spawn(argv, stdin, stdout)
        b_out, b_err = p.communicate()
        if p.returncode != 0:
            self._check_reached(p.returncode, b_err)
            raise AnsibleError('ferry: %s failed (status %d): %s'
                               % (what, p.returncode, to_native(_last_line(b_err) or (b_out or b'').strip())))

    def put_file(self, in_path, out_path):
        ''' ferry put: checksummed, renamed over out_path only once verified '''
        super(Connection, self).put_file(in_path, out_path)
        display.vvv(u'PUT %s TO %s' % (in_path, out_path), host=self._play_context.remote_addr)
        if not os.path.exists(to_bytes(in_path, errors='surrogate_or_strict')):
            raise AnsibleFileNotFound('file or module does not exist: %s' % to_native(in_path))
        remote = self._remote_path(out_path)
        if remote is not None:
            self._run('put %s' % out_path, self._argv('put', '-q', self._host_operand(), in_path, remote))
            return
        # Outside the served root: the bytes go to `cat` on the command's
        # stdin, into a temporary beside out_path that is renamed over it
        # once complete (the copy module still compares the checksum).
        with open(to_bytes(in_path, errors='surrogate_or_strict'), 'rb') as f:
            self._run('put %s' % out_path, self._argv('exec', self._host_operand(), '--', '/bin/sh', '-c',
                                                      PUT_SCRIPT, 'sh', out_path), stdin=f)

    def fetch_file(self, in_path, out_path):
        ''' ferry get: checksummed, renamed over out_path only once verified '''
        super(Connection, self).fetch_file(in_path, out_path)
        display.vvv(u'FETCH %s TO %s' % (in_path, out_path), host=self._play_context.remote_addr)
        remote = self._remote_path(in_path)
        if remote is not None:
            self._run('get %s' % in_path, self._argv('get', '-q', self._host_operand(), remote, out_path))
            return
        # Outside the served root (fetch of /etc/...): the file's bytes come
        # through `cat` into a temporary beside out_path, renamed over it
        # once complete; the fetch action compares their checksum with the
        # remote file's, as it does after every fetch.
        part = to_bytes('%s.ferry-fetch-%d' % (out_path, os.getpid()), errors='surrogate_or_strict')
        try:
            with open(part, 'wb') as f:
                self._run('fetch %s' % in_path, self._argv('exec', '-n', self._host_operand(), '--',
                                                           'cat', '--', in_path), stdout=f)
            os.rename(part, to_bytes(out_path, errors='surrogate_or_strict'))
        finally:
            if os.path.exists(part):
                os.unlink(part)

    def reset(self):
        ''' nothing persists between operations, so nothing to reset '''

    def close(self):
        ''' nothing stays open between operations '''
        self._connected = False
