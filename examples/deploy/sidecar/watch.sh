# Fetches the app's page every 2 s and keeps the last answer in /tmp/last.
while true; do
    wget -q -O /tmp/last.new "${TARGET:-http://127.0.0.1:8081/}" && mv /tmp/last.new /tmp/last
    sleep 2
done
