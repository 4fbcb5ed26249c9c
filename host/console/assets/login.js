// The sign-in page: shows why the last attempt came back here.
'use strict';
(function () {
  const messages = {
    'bad-token': 'That token is not the admin token. Check admin.token in the host\'s config.',
    'rate-limited': 'Too many wrong tokens from this address. Wait a minute, then try again.',
  };
  const notices = {
    'signed-out': 'You are signed out.',
    'expired': 'Your session has ended. Sign in again.',
  };
  const q = new URLSearchParams(window.location.search);
  const error = q.get('error');
  const notice = q.get('notice');
  if (error) {
    const p = document.getElementById('login-error');
    p.textContent = messages[error] || 'Signing in failed (' + error + ').';
    p.hidden = false;
    document.getElementById('token').setAttribute('aria-describedby', 'login-error');
  } else if (notice && notices[notice]) {
    const p = document.getElementById('login-notice');
    p.textContent = notices[notice];
    p.hidden = false;
  }
  const form = document.getElementById('login-form');
  form.addEventListener('submit', function () {
    form.querySelector('button[type=submit]').disabled = true;
  });
  // Back from the next page (bfcache): the button works again.
  window.addEventListener('pageshow', function () {
    form.querySelector('button[type=submit]').disabled = false;
  });
})();
