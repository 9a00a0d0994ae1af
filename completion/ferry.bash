# bash completion for ferry(1): subcommands, their options (read from
# `ferry COMMAND --help`, so they never drift), host names from the host
# configuration (ferry-config(5)), also after -w and -x (exec, put, get: the name
# after the last comma) and group names after -g, and remote paths for get, ls, stat, rm,
# mkdir and the shell's cd, asked of the server with `ferry ls` as scp's
# completion asks over ssh: at most two seconds, then nothing, quietly.

# Options that take a value: the word after them is that value.
_ferry_valued='-k|--key-file|--key-name|--ca|--cert|--cert-key|--connect-timeout|--keepalive|--persist|-F|--config|--timeout|--cwd|--env|-e|--checksum|-w|-x|-g'

_ferry_hosts()
{
    local f conf=${XDG_CONFIG_HOME:-$HOME/.config}/ferry/config
    for f in "$conf" /etc/ferry/config; do
        [[ -r $f ]] || continue
        # Literal Host names (not patterns), and every Group's members.
        awk 'tolower($1) == "host" { for (i = 2; i <= NF; i++) if ($i !~ /[*?!\[]/) print $i }
             tolower($1) == "group" { for (i = 3; i <= NF; i++) print $i }' "$f" 2>/dev/null
    done | sort -u
}

# The Group names of the host configuration (ferry exec -g).
_ferry_groups()
{
    local f conf=${XDG_CONFIG_HOME:-$HOME/.config}/ferry/config
    for f in "$conf" /etc/ferry/config; do
        [[ -r $f ]] && awk 'tolower($1) == "group" { print $2 }' "$f" 2>/dev/null
    done | sort -u
}

# Remote names under the directory part of $2 on host $1; $3... are the
# connection options already on the line.
_ferry_remote()
{
    local host=$1 cur=$2 dir prefix mode size date time name
    shift 2
    if [[ $cur == */* ]]; then
        dir=${cur%/*}/
        prefix=$dir
    else
        dir=.
        prefix=
    fi
    timeout 2 ferry ls --connect-timeout 2 "$@" "$host" "$dir" 2>/dev/null |
        while IFS=$' \t' read -r mode size date time name; do
            [[ -n $name ]] || continue
            # A symlink's line ends in " -> TARGET", as ls -l's does.
            [[ $mode == l* ]] && name=${name%% -> *}
            # A server's name with a control character (an escape sequence
            # when bash lists the matches; C1 too in a UTF-8 locale) is not
            # offered: no such name can be asked for anyway.
            [[ $name == *[[:cntrl:]]* ]] && continue
            [[ $mode == d* ]] && name+=/
            printf '%s\n' "$prefix$name"
        done
}

# Local files (compgen -f) or directories (-d) for the word $2: one
# reply each, whatever blanks they hold, and quoted as file names by bash.
_ferry_local()
{
    mapfile -t COMPREPLY < <(compgen "$1" -- "$2")
    compopt -o filenames 2>/dev/null
}

_ferry()
{
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
    local cmd= host= i w npos=0 conn=() fleet=
    local commands='keygen exec shell put get ls stat mkdir rm config master'

    COMPREPLY=()
    # The subcommand, HOST and the connection options given so far.
    for ((i = 1; i < COMP_CWORD; i++)); do
        w=${COMP_WORDS[i]}
        if [[ $w == -* ]]; then
            if [[ $w =~ ^($_ferry_valued)$ || ($w == -f && $cmd =~ ^(exec|put|get)$) ]]; then
                [[ $w == -w || $w == -g ]] && fleet=1
                conn+=("$w" "${COMP_WORDS[i + 1]}")
                ((i++))
            elif [[ $w == --plaintext || $w == --insecure-no-auth ]]; then
                conn+=("$w")
            fi
            continue
        fi
        if [[ -z $cmd ]]; then
            cmd=$w
        else
            ((npos++))
            [[ $npos == 1 ]] && host=$w
        fi
    done

    if [[ $prev =~ ^(-k|--key-file|--ca|--cert|--cert-key|-F|--config)$ ]]; then
        _ferry_local -f "$cur"
        return
    fi
    if [[ $prev == -w || $prev == -x ]]; then
        # A host list: complete the name after the last comma.
        local head=
        [[ $cur == *,* ]] && head=${cur%,*},
        COMPREPLY=($(compgen -P "$head" -W "$(_ferry_hosts)" -- "${cur##*,}"))
        compopt -o nospace 2>/dev/null
        return
    fi
    if [[ $prev == -g ]]; then
        COMPREPLY=($(compgen -W "$(_ferry_groups)" -- "$cur"))
        return
    fi
    if [[ $prev =~ ^($_ferry_valued)$ || ($prev == -f && $cmd =~ ^(exec|put|get)$) ]]; then
        return   # a value we cannot guess
    fi
    if [[ -z $cmd ]]; then
        if [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W '--help --version -k --key-file --key-name --ca --cert
                --cert-key --plaintext --connect-timeout --keepalive --insecure-no-auth -F
                --config --persist --no-master -v --verbose' -- "$cur"))
        else
            COMPREPLY=($(compgen -W "$commands" -- "$cur"))
        fi
        return
    fi
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$(ferry "$cmd" --help 2>/dev/null |
                                   grep -oE -- '(^|[ ,])--?[A-Za-z][A-Za-z-]*' |
                                   tr -d ' ,' | sort -u)" -- "$cur"))
        return
    fi
    case $cmd in
    keygen)
        _ferry_local -f "$cur"
        ;;
    config|exec|shell|master)
        # With -w or -g every operand is the command's.
        [[ $npos == 0 && -z $fleet ]] && COMPREPLY=($(compgen -W "$(_ferry_hosts)" -- "$cur"))
        ;;
    put)
        # With -w or -g there is no HOST: FILE and DEST.
        if [[ $npos == 0 && -z $fleet ]]; then
            COMPREPLY=($(compgen -W "$(_ferry_hosts)" -- "$cur"))
        else
            _ferry_local -f "$cur"
        fi
        ;;
    get|ls|stat|rm|mkdir)
        if [[ $cmd == get && -n $fleet ]]; then
            # get -w HOSTS FILE DIR: the remote FILE is each host's; DIR is here.
            [[ $npos == 1 ]] && _ferry_local -d "$cur"
        elif [[ $npos == 0 ]]; then
            COMPREPLY=($(compgen -W "$(_ferry_hosts)" -- "$cur"))
        else
            # Matched here, not by compgen -W, which expands the words it is
            # given: a file on the server named $(cmd) ran cmd here at a Tab.
            # Each match is escaped as the line must hold it, and what was
            # typed escaped is read without its backslashes.
            local word=${cur//\\/} name q
            while IFS= read -r name; do
                [[ $name == "$word"* ]] || continue
                printf -v q '%q' "$name"
                COMPREPLY+=("$q")
            done < <(_ferry_remote "$host" "$word" "${conn[@]}")
        fi
        ;;
    esac
    # A directory is not the end of the word.
    [[ ${#COMPREPLY[@]} == 1 && ${COMPREPLY[0]} == */ ]] && compopt -o nospace 2>/dev/null
    return 0
}

complete -F _ferry ferry
