# Sourced by the CI scripts: install_missing_packages PACKAGE... installs, with apt-get, those of the given
# Debian packages that are not installed yet (nothing happens when all are there), as root or with sudo.
# Returns non-zero if the installation fails.
install_missing_packages() {
  local missing=() package
  for package in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q '^install ok installed$'; then
      missing+=("$package")
    fi
  done
  ((${#missing[@]})) || return 0
  printf '\n==== installing %s ====\n' "${missing[*]}"
  local sudo=""
  if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
  $sudo apt-get update || return 1
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y "${missing[@]}" || {
    echo "apt-get install of ${missing[*]} failed" >&2
    return 1
  }
}
