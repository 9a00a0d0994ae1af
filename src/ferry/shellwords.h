/*
 * shellwords.h - ferry shell's own commands read their words as sh would,
 * minus expansions (shellwords.c): blanks separate, '...' is literal,
 * "..." allows \" and \\, a backslash outside quotes escapes the next
 * character.  No printing here: callers say what went wrong.
 */
#ifndef FERRY_CLIENT_SHELLWORDS_H
#define FERRY_CLIENT_SHELLWORDS_H

/*
 * Split line into words.  0 with *words (NULL-terminated, *count of them)
 * pointing into one malloc'd copy, *store: free both; -ENOMEM; or, for a
 * quote left open, the quote character (' or ", > 0), nothing allocated.
 */
int shellwords_split(const char *line, char **store, char ***words, int *count);

/*
 * The operand of cd, the text after "cd" (trimmed).  An operand without a
 * quote or a backslash is taken as typed, blanks and all ("my dir"), as
 * cd always took it; one with them is one word, split as above.  A
 * leading ~ (unquoted, alone or before '/') means the session's first
 * directory, as does no operand at all.  0 with *dir (malloc'd) and
 * *from_home: when set, *dir is what follows that directory ("" or
 * "/sub"); -ENOMEM; -E2BIG for more than one word; -ENOENT for an empty
 * word (cd '', as POSIX says); > 0 a quote left open (shellwords_split).
 */
int shellwords_cd_operand(const char *arg, char **dir, int *from_home);

#endif
