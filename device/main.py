import os

try:
    os.stat("ota.state")  # an over-the-air update under way (docs/ota.md)
    updating = True
except OSError:
    updating = False
if updating:
    import sys
    import updater

    updater.main()  # returns unless the new release is on trial
    del updater, sys.modules["updater"]  # out of the heap of the app's wakes
import app

app.main()
