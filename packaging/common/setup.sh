# Shared by the deb postinst and the rpm %pre/%post (inlined by build.sh).
# Idempotent: creates what is missing and changes nothing that exists, so an
# upgrade or a re-run never touches the license, the state or an
# administrator's chosen owners and modes.
charter_setup_users() {
	# The door group: members may ask the root updater for
	# check/apply/rollback/status (socket door and sudo door) and use the
	# agent's API. The agent's user is a member through its unit
	# (SupplementaryGroups=); add a panel's user with
	# `usermod -aG charter-update PANELUSER`.
	getent group charter-update >/dev/null || groupadd --system charter-update
	getent group charter >/dev/null || groupadd --system charter
	getent passwd charter >/dev/null || useradd --system --gid charter \
		--home-dir /var/lib/charter/agent --no-create-home \
		--shell /usr/sbin/nologin --comment "charter license agent" charter
}
charter_setup_dirs() {
	# /var/lib/charter: the license (root:charter 0640, put there by the
	# operator), the agent's state (the agent's own, 0700) and the
	# updater's state (root's; its secrets are 0600 inside).
	[ -d /var/lib/charter ] || install -d -o root -g charter -m 0750 /var/lib/charter
	[ -d /var/lib/charter/agent ] || install -d -o charter -g charter -m 0700 /var/lib/charter/agent
	[ -d /var/lib/charter/update ] || install -d -o root -g root -m 0755 /var/lib/charter/update
}
