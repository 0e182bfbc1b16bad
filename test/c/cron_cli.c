/*
** cron_cli.c — cronParse + cronNext on the command line, for the
** differential test (test/e2e/cron_diff.test.js), which feeds it hundreds of
** expressions at once and compares the answers with cron-parser's.
**
** Reads lines "EXPR<TAB>AFTER_MS" from stdin and writes one line per input
** line: the next fire time in ms since the epoch, "-1" when the expression
** never fires, or "ERR <message>" when it does not parse (or the line is
** malformed). Built natively next to the unit tests; not a ctest.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "lib.h"

int main(void){
  char line[4096];                 /* one input line */
  while( fgets(line, sizeof line, stdin) ){
    size_t n = strlen(line);
    while( n > 0 && (line[n-1]=='\n' || line[n-1]=='\r') ) line[--n] = 0;
    char *tab = strrchr(line, '\t');
    if( tab==NULL ){
      printf("ERR no tab between expression and time\n");
      continue;
    }
    *tab = 0;
    char *end;
    double after = strtod(tab + 1, &end);
    if( end==tab + 1 || *end ){
      printf("ERR bad time \"%s\"\n", tab + 1);
      continue;
    }
    Cron c;
    char err[256];
    if( cronParse(line, &c, err, sizeof err)!=NT_OK ){
      printf("ERR %s\n", err);
      continue;
    }
    printf("%.0f\n", cronNext(&c, after));
  }
  return ferror(stdin) ? 1 : 0;
}
