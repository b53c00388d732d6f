# Completes a command line in an interactive zsh (on a pseudo-terminal,
# with compinit and the completion functions of DIR in fpath) and prints
# what zsh drew: the line as completed, or the list of matches.
#   zsh -f zsh-complete.zsh DIR 'dydisnix-agent --li'
# Synchronised on output, never on time: the line is typed once zle reads
# (bracketed paste switched on after the READY marker), followed by TAB and
# ^X, bound to a widget that prints a marker: zle handles keys in order, so
# reading up to the marker reads everything the completion drew.
zmodload zsh/zpty || exit 1
zpty z 'zsh -f -i' || exit 1
zpty -w z "PROMPT='> '; fpath=($1 \$fpath); autoload -U compinit; compinit -u -D; LISTMAX=1000;" \
  "mark() { print -rn -- \$'\\n'COMPLETED\$((5+1)) }; zle -N mark; bindkey '^X' mark; print READY\$((1+1))"
# zpty -r with a pattern reads until the output so far matches it.
zpty -r z out '*READY2*'$'\e''\[\?2004h*' || exit 1
zpty -n -w z "$2"$'\t\x18'
zpty -r z out '*COMPLETED6*' || exit 1
print -r -- "$out"
zpty -d z
