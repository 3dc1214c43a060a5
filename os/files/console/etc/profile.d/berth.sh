# Berth: the engine's CLI lives with the engine, mounted from the OS image.
case ":$PATH:" in
  *:/usr/lib/berth/engine/bin:*) ;;
  *) PATH="$PATH:/usr/lib/berth/engine/bin" ;;
esac
export PATH
