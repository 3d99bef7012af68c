# Runs before main.py on every boot; kept empty of app logic so a bad app file
# can never lock out the REPL.
