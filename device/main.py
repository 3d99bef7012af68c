import os

try:
    os.stat("ota.state")  # an over-the-air update under way (docs/ota.md)
    updating = True
except OSError:
    updating = False
if updating:
    import updater

    updater.main()  # returns unless the new release is on trial
    del updater
import app

app.main()
