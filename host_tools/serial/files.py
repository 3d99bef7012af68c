"""The names of the files on a board, host side: one home for each.

The firmware names the same files in device/ (app.SAFE, config.PATH, log.PATH, log.OLD);
tests/test_protocol_contract.py fails when the two sides disagree.
"""

CONFIG = "config.json"  # written by `dhtlink provision`: the device's identity, Wi-Fi and endpoint
SAFE = "SAFE"  # present: the board boots to the REPL without starting the app
LOG = "log.txt"  # the app's log, newest lines
OLD_LOG = "log.1.txt"  # the log's previous half, after a rotation
SETTINGS = "settings.json"  # remote settings the board accepted (device/settings.py)
SPOOL_STATE = "spool.state"  # the spool's next seq and generation (device/spool.py)
SEQ_SKIPPED = "seq.skip"  # seqs jumped over by renumberings after a 409 (device/delivery.py)
MANIFEST = ".dhtlink-manifest"  # the app files `dhtlink flash` put there; written last, so it means "complete"
PENDING = ".dhtlink-manifest.pending"  # an upload under way: the old and new app files, for the next flash
# An over-the-air update under way (device/updater.py): its phase, and the release staged or
# the app it replaced. `dhtlink flash` abandons one: the flashed app is the board's app.
OTA_STATE = "ota.state"
OTA_DOWNLOAD = "ota.dl"  # a download in progress
OTA_DIRS = ("ota.new", "ota.old")
