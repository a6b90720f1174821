#!/usr/bin/env bash
# Start a private OpenSSH server on 127.0.0.1:PORT with throwaway keys under DIR.
#   tests/peers/start-sshd.sh DIR PORT
#   ssh -p PORT -i DIR/client_ed25519 -o UserKnownHostsFile=DIR/known_hosts root@127.0.0.1 true
#   tests/peers/stop-sshd.sh DIR
# Writes DIR/host_ed25519 (host key), DIR/client_ed25519 (the client's key, authorized),
# DIR/known_hosts (the host key for [127.0.0.1]:PORT), DIR/sshd_config, DIR/sshd.pid and
# DIR/sshd.log. Needs: scripts/install-peers (openssh-server); root to log in as any user.
set -euo pipefail
D=${1:?usage: start-sshd.sh DIR PORT}
PORT=${2:?usage: start-sshd.sh DIR PORT}
mkdir -p "$D"
D=$(cd "$D" && pwd)                 # sshd re-executes itself per connection: absolute paths only
chmod 700 "$D"
[ "$(id -u)" -ne 0 ] || mkdir -p /run/sshd   # privilege-separation dir sshd insists on as root
[ -f "$D/host_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C dagbroker-test-host -f "$D/host_ed25519"
[ -f "$D/client_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C dagbroker-test-client -f "$D/client_ed25519"
cp "$D/client_ed25519.pub" "$D/authorized_keys"
chmod 600 "$D/authorized_keys"
echo "[127.0.0.1]:$PORT $(cut -d' ' -f1,2 "$D/host_ed25519.pub")" > "$D/known_hosts"
cat > "$D/sshd_config" <<CONF
ListenAddress 127.0.0.1
Port $PORT
HostKey $D/host_ed25519
PidFile $D/sshd.pid
AuthorizedKeysFile $D/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
MaxSessions 20
MaxStartups 50
Subsystem sftp internal-sftp
LogLevel VERBOSE
CONF
/usr/sbin/sshd -t -f "$D/sshd_config"                  # config check
/usr/sbin/sshd -f "$D/sshd_config" -E "$D/sshd.log"    # daemonizes
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && { echo "sshd on 127.0.0.1:$PORT, client key $D/client_ed25519"; exit 0; }
  sleep 0.1
done
echo "sshd did not start listening on 127.0.0.1:$PORT; see $D/sshd.log" >&2
exit 1
