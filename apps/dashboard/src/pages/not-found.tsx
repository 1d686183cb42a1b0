import { PageHeader } from '../components/common';
import { useDocumentTitle } from '../lib/hooks';
import { Link, useRouter } from '../lib/router';

export function NotFoundPage() {
  const { pathname } = useRouter();
  useDocumentTitle('Not found');
  return (
    <>
      <PageHeader title="Page not found" />
      <p>
        The dashboard has no page at <code>{pathname}</code>. <Link to="/">Go to the overview</Link>.
      </p>
    </>
  );
}
